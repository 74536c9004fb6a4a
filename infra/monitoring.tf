# Alerts for the on-call engineer:
#   1. a refresh run failed (an ERROR log line from the refresh function),
#   2. no refresh succeeded for 25 hours (the morning run did not happen),
#   3. ingest answers 5xx at a sustained rate (RBM retries, but data lags).
# The functions run on Cloud Run, so their logs and request metrics carry
# resource.type "cloud_run_revision" and the service name.

locals {
  service_names = { for k, fn in google_cloudfunctions2_function.fn : k => fn.name }
  alert_channels = concat(
    var.notification_channels,
    [for c in google_monitoring_notification_channel.email : c.id],
  )
}

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_emails)

  project      = var.project_id
  display_name = "rbm-analytics ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }

  depends_on = [google_project_service.apis]
}

# Every log entry of severity ERROR or worse from the refresh function: the
# refresh logs a failed run as one ERROR line, and the platform logs crashes
# and timeouts at ERROR too.
resource "google_logging_metric" "refresh_errors" {
  project     = var.project_id
  name        = "${var.name_prefix}-refresh-errors"
  description = "ERROR (or worse) log entries of the refresh function"
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names["refresh"]}\" AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }
}

resource "google_monitoring_alert_policy" "refresh_failed" {
  project               = var.project_id
  display_name          = "rbm-analytics: refresh run failed"
  combiner              = "OR"
  notification_channels = local.alert_channels
  severity              = "ERROR"

  conditions {
    display_name = "refresh logged an error"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.refresh_errors.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The refresh function logged an error. Read its logs (`gcloud functions logs read ${local.service_names["refresh"]} --region ${var.region}`), fix the cause, then rerun with `rbm-analytics schedule run` — the refresh is idempotent."
  }
}

# Metric absence can look back at most 23.5 hours, and a daily job leaves a
# 24-hour gap between successes. A 23-hour alignment window stretches each
# success over 23 hours; two more hours of absence then mean no success for
# 25 hours, the longest an alignment window plus a duration may span.
resource "google_monitoring_alert_policy" "refresh_missing" {
  project               = var.project_id
  display_name          = "rbm-analytics: no successful refresh in 25 hours"
  combiner              = "OR"
  notification_channels = local.alert_channels
  severity              = "ERROR"

  conditions {
    display_name = "no 2xx from refresh for 25 hours"
    condition_absent {
      filter   = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names["refresh"]}\" AND metric.labels.response_code_class=\"2xx\""
      duration = "7200s"
      aggregations {
        alignment_period     = "82800s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "No refresh succeeded for 25 hours. Check the job with `rbm-analytics schedule status` (paused? last attempt's status?), then run it with `rbm-analytics schedule run`."
  }
}

resource "google_monitoring_alert_policy" "ingest_5xx" {
  project               = var.project_id
  display_name          = "rbm-analytics: ingest answers 5xx"
  combiner              = "OR"
  notification_channels = local.alert_channels
  severity              = "WARNING"

  conditions {
    display_name = "ingest 5xx above ${var.ingest_5xx_per_second}/s for 10 minutes"
    condition_threshold {
      filter          = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names["ingest"]}\" AND metric.labels.response_code_class=\"5xx\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.ingest_5xx_per_second
      duration        = "600s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "ingest is answering 5xx (usually 503: Firestore unavailable, or PHONE_HASH_KEY missing). RBM retries non-200 for up to 7 days, so nothing is lost while it is fixed. Read the logs: `gcloud functions logs read ${local.service_names["ingest"]} --region ${var.region}`."
  }
}
