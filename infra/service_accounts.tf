# One service account per function, one for the scheduler and one for the
# builds, so each holds only what it needs (iam.tf).
locals {
  accounts = {
    ingest    = "Writes RBM webhook events and sent records to Firestore"
    refresh   = "Reads Firestore, writes the BigQuery dataset"
    export    = "Reads the BigQuery dataset"
    scheduler = "Starts the morning refresh job and calls the intraday refresh"
    builder   = "Builds the functions' containers"
  }
}

resource "google_service_account" "sa" {
  for_each = local.accounts

  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "rbm-analytics ${each.key}"
  description  = each.value

  depends_on = [google_project_service.apis]
}
