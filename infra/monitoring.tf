# Alerts, for two readers:
#
# The on-call engineer
#   1. a refresh run failed (an ERROR log line from the refresh function or job),
#   2. no refresh job execution succeeded for 25 hours,
#   3. ingest answers 5xx at a sustained rate (RBM retries, but data lags),
#   4. the refresh's watermark lags far behind the clock (before the TTL can
#      delete a document that was never mirrored),
#   5. relay forwards to the agent's bot fail,
#   6. a burst of 401/403 at ingest (a rotated token or key not deployed).
#
# The people who read the numbers (log-based metrics compared with PromQL,
# since Monitoring Query Language is retired)
#   7. an agent's delivery rate, or 8. its read rate, falls well below its
#      level of the 7 days before (from the refresh's "daily metrics" lines),
#   9. an agent that usually has webhook events has none for hours (from
#      ingest's one line per request).
#
# The functions run on Cloud Run, so their logs and request metrics carry
# resource.type "cloud_run_revision" and the service name; the refresh job's
# carry "cloud_run_job" and the job name. Each log line is one JSON object
# (jsonPayload), "message" naming its kind ("ingest request", "refresh run").

locals {
  service_names = { for k, fn in google_cloudfunctions2_function.fn : k => fn.name }
  alert_channels = concat(
    var.notification_channels,
    [for c in google_monitoring_notification_channel.email : c.id],
  )

  refresh_logs = "((resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names["refresh"]}\") OR (resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${google_cloud_run_v2_job.refresh.name}\"))"
  ingest_lines = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names["ingest"]}\" AND jsonPayload.message=\"ingest request\""

  # Log-based metrics under their PromQL names: the first "/" becomes ":",
  # every other character PromQL does not allow becomes "_".
  promql = {
    webhook_events = "logging_googleapis_com:user_${replace(google_logging_metric.webhook_events.name, "-", "_")}"
    # Distributions: each one's running total is its _sum series.
    daily_sent      = "logging_googleapis_com:user_${replace(google_logging_metric.daily_counts["sent"].name, "-", "_")}_sum"
    daily_delivered = "logging_googleapis_com:user_${replace(google_logging_metric.daily_counts["delivered"].name, "-", "_")}_sum"
    daily_read      = "logging_googleapis_com:user_${replace(google_logging_metric.daily_counts["read"].name, "-", "_")}_sum"
  }

  watermark_lag_threshold_s = var.watermark_lag_alert_hours * 3600
  # 1 h, 6 h, 1 d, 2 d, 7 d, 30 d; the threshold is added between them.
  watermark_lag_bounds = [3600, 21600, 86400, 172800, 604800, 2592000]
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

# --- 1. refresh failed --------------------------------------------------------

# Every log entry of severity ERROR or worse from the refresh function or job:
# the refresh logs a failed run as one ERROR line, and the platform logs
# crashes and timeouts at ERROR too.
resource "google_logging_metric" "refresh_errors" {
  project     = var.project_id
  name        = "${var.name_prefix}-refresh-errors"
  description = "ERROR (or worse) log entries of the refresh function and job"
  filter      = "${local.refresh_logs} AND severity>=ERROR"

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
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.refresh_errors.name}\""
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
    content   = "The refresh (the morning job `${google_cloud_run_v2_job.refresh.name}` or the function `${local.service_names["refresh"]}`) logged an error. Read its logs in Logs Explorer (`resource.type=\"cloud_run_job\" resource.labels.job_name=\"${google_cloud_run_v2_job.refresh.name}\"`, or `gcloud functions logs read ${local.service_names["refresh"]} --region ${var.region}`), fix the cause, then run it again with `gcloud run jobs execute ${google_cloud_run_v2_job.refresh.name} --region ${var.region}`: the refresh resumes after its last committed chunk."
  }
}

# --- 2. no successful refresh -------------------------------------------------

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
    display_name = "no succeeded refresh job execution for 25 hours"
    condition_absent {
      filter   = "metric.type=\"run.googleapis.com/job/completed_execution_count\" AND resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${google_cloud_run_v2_job.refresh.name}\" AND metric.labels.result=\"succeeded\""
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
    content   = "No execution of the refresh job `${google_cloud_run_v2_job.refresh.name}` succeeded for 25 hours, so the daily tables are a day behind. Check the scheduler job (`gcloud scheduler jobs describe ${var.name_prefix}-refresh --location ${var.region}`: paused? last attempt's status?) and the job's executions (`gcloud run jobs executions list --job ${google_cloud_run_v2_job.refresh.name} --region ${var.region}`), then start it: `gcloud run jobs execute ${google_cloud_run_v2_job.refresh.name} --region ${var.region}`."
  }
}

# --- 3. ingest 5xx ------------------------------------------------------------

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
    content   = "ingest is answering 5xx (usually 503: Firestore unavailable, a relay forward failing, or a missing or too short secret). RBM retries non-200 for up to 7 days, so nothing is lost while it is fixed. Read the logs: `gcloud functions logs read ${local.service_names["ingest"]} --region ${var.region}`."
  }
}

# --- 4. watermark lag ---------------------------------------------------------

# Each "refresh run" line carries watermark_lag_s: how far the refresh's
# watermark (everything before it is mirrored) is behind the clock. Buckets
# with the threshold as a boundary, so the 99th percentile of a window is
# above the threshold exactly when a run in it reported a lag above it.
resource "google_logging_metric" "watermark_lag" {
  project     = var.project_id
  name        = "${var.name_prefix}-watermark-lag"
  description = "watermark_lag_s of each refresh run: seconds between the refresh's watermark and the clock"
  filter      = "${local.refresh_logs} AND jsonPayload.message=\"refresh run\" AND jsonPayload.watermark_lag_s:*"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
  }

  value_extractor = "EXTRACT(jsonPayload.watermark_lag_s)"

  bucket_options {
    explicit_buckets {
      bounds = concat(
        [for b in local.watermark_lag_bounds : b if b < local.watermark_lag_threshold_s],
        [local.watermark_lag_threshold_s],
        [for b in local.watermark_lag_bounds : b if b > local.watermark_lag_threshold_s],
      )
    }
  }
}

resource "google_monitoring_alert_policy" "watermark_lag" {
  project               = var.project_id
  display_name          = "rbm-analytics: refresh watermark lags ${var.watermark_lag_alert_hours} h"
  combiner              = "OR"
  notification_channels = local.alert_channels
  severity              = "CRITICAL"

  conditions {
    display_name = "watermark lag above ${var.watermark_lag_alert_hours} hours"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.watermark_lag.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.watermark_lag_threshold_s
      duration        = "0s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
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
    content   = "The refresh's watermark is more than ${var.watermark_lag_alert_hours} hours behind the clock: changes written since then are in Firestore but not yet in BigQuery. Firestore deletes each document ${var.retention_days} days (RETENTION_DAYS) after its last write, so a document the refresh has not mirrored by then is lost for good. A healthy daily refresh lags at most about a day; this fires at ${var.watermark_lag_alert_hours} hours, leaving ${var.retention_days * 24 - var.watermark_lag_alert_hours} hours to catch up. What to do: read the refresh's last runs (`refresh_runs` table, and the job's logs) — a run that hits REFRESH_TIME_BUDGET_SECONDS saves its progress and answers non-200, so repeated runs catch up chunk by chunk; start more with `gcloud run jobs execute ${google_cloud_run_v2_job.refresh.name} --region ${var.region}`, raise refresh_tasks, or fix the failure the refresh logs."
  }
}

# --- 5. relay forwards fail ---------------------------------------------------

# ingest's line records forward_outcome when it relays a webhook request to
# the agent's own bot ("ok", or why not: an error status, a timeout, a
# refused connection). Any other outcome than "ok" made RBM get a 503.
resource "google_logging_metric" "forward_failures" {
  project     = var.project_id
  name        = "${var.name_prefix}-forward-failures"
  description = "Relay forwards to an agent's bot that did not succeed"
  filter      = "${local.ingest_lines} AND jsonPayload.forward_outcome:* AND jsonPayload.forward_outcome!=\"ok\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "agent_id"
      value_type  = "STRING"
      description = "The RBM agent whose bot the request was forwarded to"
    }
    labels {
      key         = "forward_outcome"
      value_type  = "STRING"
      description = "Why the forward failed"
    }
  }

  label_extractors = {
    agent_id        = "EXTRACT(jsonPayload.agent_id)"
    forward_outcome = "EXTRACT(jsonPayload.forward_outcome)"
  }
}

resource "google_monitoring_alert_policy" "forward_failures" {
  project               = var.project_id
  display_name          = "rbm-analytics: relay forwards to the bot fail"
  combiner              = "OR"
  notification_channels = local.alert_channels
  severity              = "ERROR"

  conditions {
    display_name = "more than ${var.forward_failures_per_5min} failed forwards in 5 minutes, for 10 minutes"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.forward_failures.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.forward_failures_per_5min
      duration        = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.agent_id"]
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
    content   = "ingest could not forward webhook requests to an agent's bot (FORWARD_URL / FORWARD_URLS; the incident names the agent). Each such request got a 503, so RBM redelivers it for up to 7 days: the bot's users are waiting for answers until the bot is reachable again, and nothing is lost. Check the bot (up? answering 2xx within FORWARD_TIMEOUT_SECONDS = ${var.forward_timeout_seconds} s?) and the outcomes: Logs Explorer, `jsonPayload.message=\"ingest request\" AND jsonPayload.forward_outcome!=\"ok\"`. A bot that moved needs its new URL in forward_url / forward_urls and `make deploy`."
  }
}

# --- 6. burst of 401/403 ------------------------------------------------------

resource "google_monitoring_alert_policy" "auth_failures" {
  project               = var.project_id
  display_name          = "rbm-analytics: burst of 401/403 at ingest"
  combiner              = "OR"
  notification_channels = local.alert_channels
  severity              = "WARNING"

  conditions {
    display_name = "more than ${var.auth_failures_per_5min} answers 401 or 403 in 5 minutes"
    condition_threshold {
      filter          = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names["ingest"]}\" AND metric.labels.response_code=one_of(\"401\", \"403\")"
      comparison      = "COMPARISON_GT"
      threshold_value = var.auth_failures_per_5min
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
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "ingest is refusing many requests as unauthenticated (401: bad webhook signature, bearer key or Pub/Sub token) or forbidden (403: a credential used for an agent it is not bound to). Most often a token was rotated in the RBM console, or a new agent API key given to the backend, without the new value in Secret Manager: RBM keeps retrying for 7 days, so events are delayed, not lost, once fixed. Add the new value (`printf %s \"new,old\" | gcloud secrets versions add RBM_CLIENT_TOKENS --data-file=-`, likewise AGENT_API_KEYS or PUBSUB_PUSH_TOKENS) and redeploy (`make deploy`). The log lines (`jsonPayload.status=401 OR jsonPayload.status=403`) name the route and the reason, never the credential. A burst from unknown sources is someone probing the public webhook: nothing was stored."
  }
}

# --- 7-9. business alerts -----------------------------------------------------

# Webhook events stored, per agent and kind (DELIVERED, READ, IS_TYPING,
# user_message:text, ...): one per "ingest request" line of the webhook route
# or of the Pub/Sub push route (agents whose integration is Pub/Sub).
resource "google_logging_metric" "webhook_events" {
  project     = var.project_id
  name        = "${var.name_prefix}-webhook-events"
  description = "Webhook events ingest stored, per agent and kind"
  filter      = "${local.ingest_lines} AND (jsonPayload.route=\"webhook\" OR jsonPayload.route=\"pubsub\") AND jsonPayload.outcome=\"stored\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "agent_id"
      value_type  = "STRING"
      description = "The RBM agent"
    }
    labels {
      key         = "kind"
      value_type  = "STRING"
      description = "Receipt (DELIVERED, READ), event type or user_message:<kind>"
    }
  }

  label_extractors = {
    agent_id = "EXTRACT(jsonPayload.agent_id)"
    kind     = "EXTRACT(jsonPayload.kind)"
  }
}

# The refresh's "daily metrics" line: one per agent and day it wrote, with
# that day's sent, delivered and read (the same numbers as daily_metrics:
# receipts of that day's messages, deduplicated, under the 8-day rule).
# Only yesterday's line of a closed run (age_days 1, partial false): each
# agent's day is then seen once, always at the same age, so days compare
# with each other although receipts keep arriving for 8 days.
resource "google_logging_metric" "daily_counts" {
  for_each = toset(["sent", "delivered", "read"])

  project     = var.project_id
  name        = "${var.name_prefix}-daily-${each.key}"
  description = "Yesterday's ${each.key} per agent, from the morning refresh's daily metrics lines"
  filter      = "${local.refresh_logs} AND jsonPayload.message=\"daily metrics\" AND jsonPayload.age_days=1 AND jsonPayload.partial=false"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
    labels {
      key         = "agent_id"
      value_type  = "STRING"
      description = "The RBM agent"
    }
  }

  value_extractor = "EXTRACT(jsonPayload.${each.key})"
  label_extractors = {
    agent_id = "EXTRACT(jsonPayload.agent_id)"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 20
      growth_factor      = 2
      scale              = 1
    }
  }
}

locals {
  # Per agent: yesterday's counts (logged by the last morning run), and the
  # 7 days before, each as it stood at age 1.
  events_selector = "monitored_resource=\"cloud_run_revision\",service_name=\"${local.service_names["ingest"]}\""
  sent_1d         = "sum by (agent_id) (increase(${local.promql.daily_sent}[1d]))"
  sent_7d         = "sum by (agent_id) (increase(${local.promql.daily_sent}[7d] offset 1d))"
  delivered_1d    = "sum by (agent_id) (increase(${local.promql.daily_delivered}[1d]))"
  delivered_7d    = "sum by (agent_id) (increase(${local.promql.daily_delivered}[7d] offset 1d))"
  read_1d         = "sum by (agent_id) (increase(${local.promql.daily_read}[1d]))"
  read_7d         = "sum by (agent_id) (increase(${local.promql.daily_read}[7d] offset 1d))"

  # Fires per agent while yesterday's rate (delivered or read, over sent, as
  # daily_metrics' rates) is below rate_drop_ratio times the rate of the 7
  # days before, and yesterday had enough messages for a rate to mean
  # something. A rerun that logs a day twice doubles both sides of a ratio.
  rate_drop_queries = {
    delivery = "(${local.delivered_1d} / ${local.sent_1d}) < ${var.rate_drop_ratio} * (${local.delivered_7d} / ${local.sent_7d}) and ${local.sent_1d} >= ${var.rate_min_daily_messages}"
    read     = "(${local.read_1d} / ${local.sent_1d}) < ${var.rate_drop_ratio} * (${local.read_7d} / ${local.sent_7d}) and ${local.sent_1d} >= ${var.rate_min_daily_messages}"
  }

  # Agents whose past 7 days average at least silence_min_expected_events
  # per silence_hours window, with no webhook event in the last silence_hours.
  silence_windows_per_week = 168 / var.silence_hours
  silence_query            = "(sum by (agent_id) (increase(${local.promql.webhook_events}{${local.events_selector}}[7d])) / ${local.silence_windows_per_week}) >= ${var.silence_min_expected_events} unless sum by (agent_id) (increase(${local.promql.webhook_events}{${local.events_selector}}[${var.silence_hours}h])) > 0"

  rate_drop_why = "Read from the refresh's daily numbers rather than from ingest's receipts as they arrive: a day's rate is then the share of that day's messages (receipts for earlier sends do not count, a burst of sending does not dilute it), sent records posted without one agent_id still count, and it is the number the Analytics page and daily_metrics show. The price: it arrives after the morning refresh, once a day."
  rate_drop_docs = {
    delivery = "Yesterday's delivery rate of an agent (delivered / sent of the messages sent yesterday, as the morning refresh computed it) is below ${var.rate_drop_ratio * 100}% of its rate over the 7 days before, each day taken at the same age (the incident names the agent). ${local.rate_drop_why} Usual causes: the agent sends to many numbers that cannot receive RCS (a new list, a new country, a carrier outage), the agent was suspended or its launch changed, or receipts stopped arriving (webhook or relay broken: check the other alerts). What to do: compare sent and delivered per day in agent_daily or the Analytics page, look at the agent's status in the RBM Developer Console, and check with whoever changed the campaign or the audience."
    read     = "Yesterday's read rate of an agent (read / sent of the messages sent yesterday, as the morning refresh computed it) is below ${var.rate_drop_ratio * 100}% of its rate over the 7 days before, each day taken at the same age (the incident names the agent). ${local.rate_drop_why} Usual causes: a message or campaign users ignore, sending at a bad hour, or READ receipts no longer arriving (users can switch read receipts off; a webhook or relay fault shows in the other alerts). What to do: compare read rates per day in agent_daily or the Analytics page, and review what changed in yesterday's messages."
  }
}

resource "google_monitoring_alert_policy" "rate_drop" {
  for_each = local.rate_drop_queries

  project               = var.project_id
  display_name          = "rbm-analytics: ${each.key} rate of an agent fell below ${var.rate_drop_ratio * 100}% of its 7-day level"
  combiner              = "OR"
  notification_channels = local.alert_channels
  severity              = "WARNING"

  conditions {
    display_name = "${each.key} rate, last 24 h vs the 7 days before"
    condition_prometheus_query_language {
      query               = each.value
      duration            = "3600s"
      evaluation_interval = "300s"
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = local.rate_drop_docs[each.key]
  }
}

resource "google_monitoring_alert_policy" "agent_silent" {
  project               = var.project_id
  display_name          = "rbm-analytics: no webhook events for an agent in ${var.silence_hours} hours"
  combiner              = "OR"
  notification_channels = local.alert_channels
  severity              = "WARNING"

  conditions {
    display_name = "usually active agent silent for ${var.silence_hours} hours"
    condition_prometheus_query_language {
      query               = local.silence_query
      duration            = "0s"
      evaluation_interval = "300s"
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "An agent that over the last 7 days averaged at least ${var.silence_min_expected_events} webhook events per ${var.silence_hours} hours has had none stored for ${var.silence_hours} hours (the incident names the agent). Either the agent stopped sending (a campaign ended, the backend is down), or events no longer reach ingest: the agent's webhook in the RBM Developer Console was changed or removed, the Pub/Sub push subscription was paused, or ingest rejects them (see the 401/403 and 5xx alerts). What to do: check the agent's Integrations page in the RBM Developer Console, then ingest's logs for that agent (`jsonPayload.message=\"ingest request\" AND jsonPayload.agent_id=\"AGENT\"`)."
  }
}

# Warned at plan time: an alert that fires after RETENTION_DAYS is no warning.
check "watermark_alert_before_retention" {
  assert {
    condition     = var.watermark_lag_alert_hours <= var.retention_days * 24 / 4
    error_message = "watermark_lag_alert_hours should be at most a quarter of RETENTION_DAYS: the alert must leave time to catch up before the TTL deletes unmirrored documents."
  }
}
