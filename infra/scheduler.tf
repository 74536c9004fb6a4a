# Two Cloud Scheduler jobs, both running as the scheduler's own account:
#
#   morning   starts the refresh job (refresh_job.tf) through the Run Admin
#             API with an OAuth token; the account is invoker on that job only
#   intraday  posts {"intraday": true} to the refresh function with an OIDC
#             token each hour: today's partial row, replaced by the morning
#             run; the account is invoker on that function only (iam.tf)

locals {
  refresh_url      = google_cloudfunctions2_function.fn["refresh"].service_config[0].uri
  intraday_enabled = var.intraday_schedule != ""

  # The body the refresh function reads as "today so far".
  intraday_body = jsonencode({ intraday = true })

  # Cloud Scheduler waits at most 30 minutes for an HTTP target. The attempt
  # deadline matches the function's timeout up to that ceiling, so the
  # scheduler never retries while the first attempt may still be running.
  scheduler_max_deadline_seconds = 1800
  refresh_attempt_deadline       = "${min(var.refresh_timeout_seconds, local.scheduler_max_deadline_seconds)}s"
}

resource "google_cloud_scheduler_job" "refresh" {
  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-refresh"
  description = "Each morning: start the refresh job (the last BACKFILL_DAYS UTC days into BigQuery)"
  schedule    = var.refresh_schedule
  time_zone   = var.refresh_time_zone
  # jobs.run answers as soon as the execution is created; the tasks' own
  # retries (max_retries) cover failures after that.
  attempt_deadline = "180s"

  # Retried only when the execution could not be started (API error).
  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
    max_doublings        = 3
    max_retry_duration   = "0s"
  }

  http_target {
    http_method = "POST"
    uri         = local.refresh_job_run_url

    # An OAuth access token, not an OIDC identity token: the target is a
    # Google API (*.googleapis.com).
    oauth_token {
      service_account_email = google_service_account.sa["scheduler"].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_project_service.apis, google_cloud_run_v2_job_iam_member.refresh_job_scheduler]
}

resource "google_cloud_scheduler_job" "intraday" {
  count = local.intraday_enabled ? 1 : 0

  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-intraday"
  description      = "Each hour: today's partial row (the morning refresh replaces it)"
  schedule         = var.intraday_schedule
  time_zone        = var.refresh_time_zone
  attempt_deadline = local.refresh_attempt_deadline

  # The next hour's run catches up anyway: one retry, then wait for it.
  retry_config {
    retry_count          = 1
    min_backoff_duration = "300s"
    max_backoff_duration = "300s"
    max_doublings        = 0
    max_retry_duration   = "0s"
  }

  http_target {
    http_method = "POST"
    uri         = local.refresh_url
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode(local.intraday_body)

    oidc_token {
      service_account_email = google_service_account.sa["scheduler"].email
      audience              = local.refresh_url
    }
  }

  depends_on = [google_project_service.apis, google_cloud_run_service_iam_member.refresh_scheduler]
}
