# Least privilege. No primitive roles (owner/editor/viewer) anywhere; every
# grant below is the narrowest resource the role can be bound to.
#
#   ingest    roles/datastore.user (project: Firestore has no narrower binding)
#   refresh   roles/datastore.user, dataEditor on the dataset, bigquery.jobUser
#   export    dataViewer on the dataset, bigquery.jobUser
#   scheduler run.invoker on the refresh service only
#   builder   reads the function source, writes build logs and images

# --- Firestore ---------------------------------------------------------------

# ingest writes events; refresh reads them and keeps its watermark document.
resource "google_project_iam_member" "firestore_user" {
  for_each = toset(["ingest", "refresh"])

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.sa[each.key].member

  # Only this deployment's database, should the project hold others.
  condition {
    title       = "rbm-analytics database only"
    description = "Firestore database ${var.firestore_database}"
    expression  = "resource.name == \"projects/${var.project_id}/databases/${var.firestore_database}\""
  }
}

# --- BigQuery ----------------------------------------------------------------

resource "google_bigquery_dataset_iam_member" "refresh_editor" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.analytics.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.sa["refresh"].member
}

resource "google_bigquery_dataset_iam_member" "export_viewer" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.analytics.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.sa["export"].member
}

# Queries run as jobs billed to the project: jobUser has no narrower scope.
resource "google_project_iam_member" "bigquery_job_user" {
  for_each = toset(["refresh", "export"])

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.sa[each.key].member
}

# --- Invokers (Cloud Run services behind the 2nd gen functions) -------------

# RBM cannot present IAM credentials: ingest is public and its own signature
# and bearer-token checks are the guard.
resource "google_cloud_run_service_iam_member" "ingest_public" {
  #checkov:skip=CKV_GCP_102:RBM's webhook cannot send IAM credentials; ingest verifies X-Goog-Signature and bearer tokens itself
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn["ingest"].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_service_iam_member" "refresh_scheduler" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn["refresh"].name
  role     = "roles/run.invoker"
  member   = google_service_account.sa["scheduler"].member
}

resource "google_cloud_run_service_iam_member" "export_invokers" {
  for_each = toset(var.export_invokers)

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn["export"].name
  role     = "roles/run.invoker"
  member   = each.value
}

# --- Builds ------------------------------------------------------------------

# The roles Google documents for a custom Cloud Build account of Cloud Run
# functions. Object reads are project-wide because the build fetches the
# source from Cloud Functions' own staging bucket (gcf-v2-sources-*), which
# this configuration does not manage.
resource "google_project_iam_member" "builder" {
  for_each = toset(["roles/logging.logWriter", "roles/artifactregistry.writer", "roles/storage.objectViewer"])

  project = var.project_id
  role    = each.value
  member  = google_service_account.sa["builder"].member
}
