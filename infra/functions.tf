# The three Cloud Functions (2nd gen), built from ../functions.

locals {
  functions_dir = "${path.module}/../functions"

  # The settings every function reads (functions/rbm_analytics/core/config.py
  # ENV_VARS); the secret ones come from Secret Manager (secrets.tf).
  env = {
    GOOGLE_CLOUD_PROJECT        = var.project_id
    FIRESTORE_DATABASE          = var.firestore_database
    BQ_DATASET                  = google_bigquery_dataset.analytics.dataset_id
    BQ_LOCATION                 = var.bq_location
    BACKFILL_DAYS               = tostring(var.backfill_days)
    RETENTION_DAYS              = tostring(var.retention_days)
    MAX_BODY_BYTES              = tostring(var.max_body_bytes)
    FIRESTORE_DEADLINE_SECONDS  = tostring(var.firestore_deadline_seconds)
    REFRESH_OVERLAP_SECONDS     = tostring(var.refresh_overlap_seconds)
    FORWARD_URL                 = var.forward_url
    FORWARD_URLS                = join(",", [for agent, url in var.forward_urls : "${agent}=${url}"])
    FORWARD_TIMEOUT_SECONDS     = tostring(var.forward_timeout_seconds)
    MIRROR_RETENTION_DAYS       = tostring(var.mirror_retention_days)
    REFRESH_CHUNK_DOCUMENTS     = tostring(var.refresh_chunk_documents)
    REFRESH_TIME_BUDGET_SECONDS = tostring(var.refresh_time_budget_seconds)
    SHARD_COUNT                 = tostring(var.shard_count)
  }

  functions = {
    # Public webhook: many short I/O-bound requests per instance, a hard cap
    # on instances so a flood cannot run up the bill.
    ingest = {
      entry_point = "ingest"
      description = "RBM webhook and the agent's sent log into Firestore"
      memory      = "512Mi"
      cpu         = "1"
      timeout     = 60
      concurrency = var.ingest_concurrency
      max         = var.ingest_max_instances
      ingress     = "ALLOW_ALL"
    }
    # One refresh at a time: a second call waits for the instance (429s are
    # retried by the scheduler) instead of racing the watermark. Kept for
    # the intraday run and for backfills; the morning run is the job
    # (refresh_job.tf). Cloud Scheduler's HTTP requests do not count as
    # internal traffic, so while the intraday run is scheduled the function
    # admits all networks (IAM still admits only the scheduler's account and
    # the project's admins); without it, internal traffic only.
    refresh = {
      entry_point = "refresh"
      description = "Morning refresh: Firestore into the BigQuery mirror and daily tables"
      memory      = var.refresh_memory
      cpu         = "1"
      timeout     = var.refresh_timeout_seconds
      concurrency = 1
      max         = 1
      ingress     = local.intraday_enabled ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    }
    export = {
      entry_point = "export"
      description = "CSV/JSON export and the Analytics page from BigQuery"
      memory      = "1Gi"
      cpu         = "1"
      timeout     = 300
      concurrency = 10
      max         = var.export_max_instances
      ingress     = "ALLOW_ALL"
    }
  }
}

# --- Source ------------------------------------------------------------------

data "archive_file" "functions" {
  type        = "zip"
  source_dir  = local.functions_dir
  output_path = "${path.module}/build/functions.zip"
  # A development install (pip install -e) leaves egg-info metadata here.
  excludes = ["**/__pycache__/**", "**/*.pyc", "*.egg-info/**", "**/*.egg-info/**"]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only build inputs re-created from the repository on every apply; access logs add nothing
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 3
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# The functions' container images (and the refresh job's, which is the refresh
# function's image): a repository of our own, so the build account can be
# granted write on it alone instead of on every repository of the project.
resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Holds only container images rebuilt from the open-source functions folder on every deploy; no data or secrets are baked in
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name_prefix}-images"
  description   = "rbm-analytics function images, built by Cloud Build from functions/"
  format        = "DOCKER"

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "source" {
  # Named by content, so a code change deploys new revisions.
  name   = "functions-${data.archive_file.functions.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.functions.output_path
}

# --- Functions ---------------------------------------------------------------

resource "google_cloudfunctions2_function" "fn" {
  #checkov:skip=CKV_GCP_124:ingest must be reachable by RBM from the internet; export and refresh (for Cloud Scheduler) admit only IAM-authorised callers (iam.tf)
  for_each = local.functions

  project     = var.project_id
  name        = "${var.name_prefix}-${each.key}"
  location    = var.region
  description = each.value.description

  build_config {
    runtime           = var.runtime
    entry_point       = each.value.entry_point
    service_account   = google_service_account.sa["builder"].id
    docker_repository = google_artifact_registry_repository.images.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.sa[each.key].email
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout
    max_instance_request_concurrency = each.value.concurrency
    min_instance_count               = 0
    max_instance_count               = each.value.max
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    # refresh and export (WSGI) are served on THREADS threads (default 4 per
    # vCPU); match the concurrency Cloud Run sends, so requests waiting on
    # BigQuery do not queue inside the instance. ingest (ASGI) serves its
    # requests as coroutines on one event loop and needs no threads for them.
    environment_variables = merge(local.env, { THREADS = tostring(each.value.concurrency) })

    dynamic "secret_environment_variables" {
      for_each = local.function_secrets[each.key]
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.accessor,
    google_project_iam_member.builder_logs,
    google_project_iam_member.builder_function_sources,
    google_storage_bucket_iam_member.builder_source,
    google_artifact_registry_repository_iam_member.builder_images,
  ]
}
