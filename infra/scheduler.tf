# The morning refresh: Cloud Scheduler POSTs to refresh with an OIDC token of
# its own service account, the only principal allowed to invoke it (iam.tf).

locals {
  refresh_url = google_cloudfunctions2_function.fn["refresh"].service_config[0].uri

  # Cloud Scheduler waits at most 30 minutes for an HTTP target. The attempt
  # deadline matches the function's timeout up to that ceiling, so the
  # scheduler never retries while the first attempt may still be running.
  scheduler_max_deadline_seconds = 1800
  refresh_attempt_deadline       = "${min(var.refresh_timeout_seconds, local.scheduler_max_deadline_seconds)}s"
}

resource "google_cloud_scheduler_job" "refresh" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-refresh"
  description      = "Each morning: recompute the last BACKFILL_DAYS UTC days in BigQuery"
  schedule         = var.refresh_schedule
  time_zone        = var.refresh_time_zone
  attempt_deadline = local.refresh_attempt_deadline

  # A failed run is retried with exponential backoff (10 min, 20 min, 40 min);
  # the refresh is idempotent, so a retry after a partial run is safe.
  retry_config {
    retry_count          = 3
    min_backoff_duration = "600s"
    max_backoff_duration = "3600s"
    max_doublings        = 3
    max_retry_duration   = "0s"
  }

  http_target {
    http_method = "POST"
    uri         = local.refresh_url
    headers = {
      "Content-Type" = "application/json"
    }
    # An empty object: the refresh defaults to today (UTC).
    body = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.sa["scheduler"].email
      audience              = local.refresh_url
    }
  }

  depends_on = [google_project_service.apis, google_cloud_run_service_iam_member.refresh_scheduler]
}
