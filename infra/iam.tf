# Least privilege. No primitive roles (owner/editor/viewer) anywhere; every
# grant below is the narrowest resource the role can be bound to.
#
#   ingest    roles/datastore.user (project: Firestore has no narrower binding)
#   refresh   roles/datastore.user, dataEditor on the dataset, dataViewer on
#             the authorized reach function, bigquery.jobUser (the refresh
#             function and the refresh job run as this account)
#   export    dataViewer on the daily tables and the views only (never the
#             mirror tables, which hold user keys, per-user times and
#             postback_data), on the authorized reach function alone (it
#             returns counts only), bigquery.jobUser
#   scheduler run.invoker on the refresh job, and on the refresh function
#             while the intraday run is scheduled
#   builder   reads the function source buckets, writes build logs and the
#             images repository

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

# An access entry, not google_bigquery_dataset_iam_member: the IAM resources
# rewrite the dataset's access list without its authorized routines
# (bigquery.tf), and the two kinds of resource would undo each other's
# changes. WRITER is dataEditor's name in a dataset's access list (the API
# answers with it, so writing the role's full name would never settle).
resource "google_bigquery_dataset_access" "refresh_editor" {
  project       = var.project_id
  dataset_id    = google_bigquery_dataset.analytics.dataset_id
  role          = "WRITER"
  user_by_email = google_service_account.sa["refresh"].email
}

# export reads the daily tables (counts, durations, postback counts) and the
# per-day duration samples, and the views over them; table by table, so a
# mirror table with user keys is never readable by it.
resource "google_bigquery_table_iam_member" "export_table_reader" {
  for_each = local.export_tables

  project    = var.project_id
  dataset_id = google_bigquery_dataset.analytics.dataset_id
  table_id   = google_bigquery_table.table[each.value].table_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.sa["export"].member
}

resource "google_bigquery_table_iam_member" "export_view_reader" {
  for_each = local.views

  project    = var.project_id
  dataset_id = google_bigquery_dataset.analytics.dataset_id
  table_id   = google_bigquery_table.view[each.key].table_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.sa["export"].member
}

# Week and month reach: the authorized function, and nothing else in its
# dataset (dataViewer holds bigquery.routines.get, which calling it needs).
resource "google_bigquery_routine_iam_member" "export_reach" {
  for_each = local.authorized_routines

  project    = var.project_id
  dataset_id = google_bigquery_dataset.reach.dataset_id
  routine_id = google_bigquery_routine.authorized[each.key].routine_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.sa["export"].member
}

# The refresh replaces the analysts' table functions when their SQL changes,
# and BigQuery resolves the calls to period_reach in them as the refresh's
# account. The refresh reads the mirror anyway (dataEditor): no new access.
resource "google_bigquery_routine_iam_member" "refresh_reach" {
  for_each = local.authorized_routines

  project    = var.project_id
  dataset_id = google_bigquery_dataset.reach.dataset_id
  routine_id = google_bigquery_routine.authorized[each.key].routine_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.sa["refresh"].member
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

# The intraday run posts to the refresh function (scheduler.tf).
resource "google_cloud_run_service_iam_member" "refresh_scheduler" {
  count = local.intraday_enabled ? 1 : 0

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

# The morning run starts the refresh job through the Run Admin API. Invoker on
# this job alone: it may execute the job as defined, not change it (that
# would need run.jobs.runWithOverrides, which the scheduler does not use).
resource "google_cloud_run_v2_job_iam_member" "refresh_job_scheduler" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_job.refresh.name
  role     = "roles/run.invoker"
  member   = google_service_account.sa["scheduler"].member
}

# --- Builds ------------------------------------------------------------------

# What Google documents for a custom Cloud Build account of Cloud Run
# functions (log writer, Artifact Registry writer, object viewer on the
# source), each on the narrowest resource:
#   - build logs: project-wide, logging has no narrower binding;
#   - images: writer on this deployment's repository only;
#   - source: viewer on our source bucket, and on the bucket Cloud Functions
#     copies each function's source to (gcf-v2-sources-NUMBER-REGION). That
#     bucket is created and owned by Cloud Functions on the first deploy, so
#     it cannot carry a bucket-level grant before it exists: the grant is
#     made on the project with a condition that admits that bucket alone.
locals {
  function_sources_bucket = "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
}

resource "google_project_iam_member" "builder_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.sa["builder"].member
}

resource "google_artifact_registry_repository_iam_member" "builder_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.sa["builder"].member
}

resource "google_storage_bucket_iam_member" "builder_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.sa["builder"].member
}

resource "google_project_iam_member" "builder_function_sources" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.sa["builder"].member

  condition {
    title       = "Cloud Functions source bucket only"
    description = "The bucket Cloud Functions stages function source in, in ${var.region}"
    expression  = "resource.name == \"projects/_/buckets/${local.function_sources_bucket}\" || resource.name.startsWith(\"projects/_/buckets/${local.function_sources_bucket}/\")"
  }
}
