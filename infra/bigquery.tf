# The dataset and every table of the contract, built from the same JSON files
# the code reads (functions/rbm_analytics/core/tables.py): schemas/<table>.json
# holds the columns, schemas/tables.json the partitioning, clustering and kind
# (mirror, daily or log) of each table.

locals {
  tables = jsondecode(file("${path.module}/schemas/tables.json"))

  mirror_partition_expiration_ms = var.mirror_retention_days * 86400000
}

resource "google_bigquery_dataset" "analytics" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption; the dataset holds hashed user keys and counts only
  project     = var.project_id
  dataset_id  = var.dataset_id
  location    = var.bq_location
  description = "rbm-analytics: raw mirror of RBM events and daily metrics"

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "table" {
  #checkov:skip=CKV_GCP_80:Google-managed encryption; the tables hold hashed user keys and counts only
  for_each = local.tables

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.analytics.dataset_id
  table_id            = each.key
  schema              = file("${path.module}/schemas/${each.key}.json")
  clustering          = length(each.value.cluster_fields) > 0 ? each.value.cluster_fields : null
  deletion_protection = var.deletion_protection

  dynamic "time_partitioning" {
    for_each = each.value.partition_field == null ? [] : [each.value.partition_field]
    content {
      type  = "DAY"
      field = time_partitioning.value
      # Only the raw mirror ages out; the daily tables are the history.
      expiration_ms = each.value.kind == "mirror" && var.mirror_retention_days > 0 ? local.mirror_partition_expiration_ms : null
    }
  }
}
