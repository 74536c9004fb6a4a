# Inputs. Only project_id is required; see terraform.tfvars.example.

variable "project_id" {
  type        = string
  description = "Google Cloud project to deploy into (billing enabled)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id: 6-30 lowercase letters, digits or hyphens."
  }
}

variable "region" {
  type        = string
  description = "Region of the functions, the scheduler job and the source bucket."
  default     = "us-central1"
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (functions are <prefix>-ingest, <prefix>-refresh, <prefix>-export)."
  default     = "rbm-analytics"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "runtime" {
  type        = string
  description = "Cloud Functions Python runtime."
  default     = "python312"

  validation {
    condition     = contains(["python311", "python312", "python313"], var.runtime)
    error_message = "runtime must be python311, python312 or python313."
  }
}

# --- Firestore ---------------------------------------------------------------

variable "firestore_database" {
  type        = string
  description = "Firestore database id (FIRESTORE_DATABASE). \"(default)\" or a named database."
  default     = "(default)"

  validation {
    condition     = var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database))
    error_message = "firestore_database must be \"(default)\" or 4-63 lowercase letters, digits or hyphens."
  }
}

variable "create_firestore_database" {
  type        = bool
  description = "Create the Firestore database. Set false to adopt one that already exists (a project already running an RBM agent often has a \"(default)\" database in Native mode); or keep true and `terraform import` it (README \"Deploy\")."
  default     = true
}

variable "firestore_location" {
  type        = string
  description = "Firestore location: a multi-region (nam5, eur3) or a region (us-central1)."
  default     = "nam5"
}

# --- BigQuery ----------------------------------------------------------------

variable "dataset_id" {
  type        = string
  description = "BigQuery dataset of the mirror and daily tables (BQ_DATASET)."
  default     = "rbm_analytics"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,1024}$", var.dataset_id))
    error_message = "dataset_id may contain only letters, digits and underscores."
  }
}

variable "bq_location" {
  type        = string
  description = "BigQuery dataset location (BQ_LOCATION), e.g. US, EU or a region."
  default     = "US"
}

variable "mirror_retention_days" {
  type        = number
  description = "MIRROR_RETENTION_DAYS: days a partition of the raw mirror tables (agent_messages, user_messages, user_events) is kept; 0 keeps them forever. Daily tables never expire."
  default     = 400

  validation {
    condition     = var.mirror_retention_days == 0 || var.mirror_retention_days >= 30
    error_message = "mirror_retention_days must be 0 (keep forever) or at least 30: the refresh re-reads the last days and a backfill may reach further."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the Firestore database and the BigQuery tables from deletion. Set false and apply before `make destroy`."
  default     = true
}

# --- Settings the functions read (functions/rbm_analytics/core/config.py) --------

variable "backfill_days" {
  type        = number
  description = "BACKFILL_DAYS: the window W of the 8-day rule."
  default     = 8

  validation {
    condition     = var.backfill_days >= 1 && var.backfill_days <= 30
    error_message = "backfill_days must be between 1 and 30."
  }
}

variable "retention_days" {
  type        = number
  description = "RETENTION_DAYS: days a Firestore document lives before the TTL policy deletes it."
  default     = 90

  validation {
    condition     = var.retention_days >= 9
    error_message = "retention_days must exceed the backfill window, or receipts expire before the refresh counts them."
  }
}

variable "max_body_bytes" {
  type        = number
  description = "MAX_BODY_BYTES: largest request body ingest accepts (413 above)."
  default     = 1048576
}

variable "firestore_deadline_seconds" {
  type        = number
  description = "FIRESTORE_DEADLINE_SECONDS: bound on one Firestore write, retries included."
  default     = 10
}

variable "refresh_overlap_seconds" {
  type        = number
  description = "REFRESH_OVERLAP_SECONDS: how far before the previous run the next refresh re-reads."
  default     = 300
}

variable "forward_url" {
  type        = string
  description = "FORWARD_URL: relay mode. ingest stores each verified webhook request and forwards it, byte for byte with its signature, to this URL (the agent's own bot). Empty: no relay."
  default     = ""
}

variable "forward_urls" {
  type        = map(string)
  description = "FORWARD_URLS: per-agent relay targets (agentId => URL); agents not listed use forward_url."
  default     = {}
}

variable "forward_timeout_seconds" {
  type        = number
  description = "FORWARD_TIMEOUT_SECONDS: a relay forward slower than this answers RBM 503, so RBM redelivers."
  default     = 10
}

variable "refresh_chunk_documents" {
  type        = number
  description = "REFRESH_CHUNK_DOCUMENTS: documents the refresh reads, loads and commits per chunk (bounds its memory)."
  default     = 20000
}

variable "refresh_time_budget_seconds" {
  type        = number
  description = "REFRESH_TIME_BUDGET_SECONDS: how long a refresh may catch up before it saves its progress and stops (non-200, so the scheduler retries)."
  default     = 1200
}

variable "shard_count" {
  type        = number
  description = "SHARD_COUNT: shards of the change feed (no index hotspot on the update time; the refresh fans out over them)."
  default     = 16
}

# --- Sizing ------------------------------------------------------------------

variable "ingest_max_instances" {
  type        = number
  description = "Cap on ingest instances: bounds cost if the public webhook is flooded."
  default     = 20

  validation {
    condition     = var.ingest_max_instances >= 1 && var.ingest_max_instances <= 1000
    error_message = "ingest_max_instances must be between 1 and 1000."
  }
}

variable "ingest_concurrency" {
  type        = number
  description = "Concurrent requests per ingest instance (I/O bound: one Firestore write each)."
  default     = 80

  validation {
    condition     = var.ingest_concurrency >= 1 && var.ingest_concurrency <= 1000
    error_message = "ingest_concurrency must be between 1 and 1000."
  }
}

variable "refresh_timeout_seconds" {
  type        = number
  description = "Refresh function timeout. The scheduler waits at most 30 minutes for an HTTP target, so values above 1800 only help manual backfills."
  default     = 1800

  validation {
    condition     = var.refresh_timeout_seconds >= 60 && var.refresh_timeout_seconds <= 3600
    error_message = "refresh_timeout_seconds must be between 60 and 3600 (the HTTP function maximum)."
  }
}

variable "refresh_memory" {
  type        = string
  description = "Memory of the refresh function."
  default     = "2Gi"
}

variable "export_max_instances" {
  type        = number
  description = "Cap on export instances."
  default     = 5
}

variable "refresh_tasks" {
  type        = number
  description = "Tasks of the morning refresh job, all run in parallel; task i reads the shards s mod N = i. More than shard_count leaves tasks idle; a count that does not divide shard_count leaves some task more shards (at 10 M messages a day, 16 = shard_count for a 15-minute morning: docs/scaling.md)."
  default     = 4

  validation {
    condition     = var.refresh_tasks >= 1 && var.refresh_tasks <= 256
    error_message = "refresh_tasks must be between 1 and 256."
  }
}

variable "refresh_task_timeout_seconds" {
  type        = number
  description = "Timeout of one refresh job task attempt. Keep it above REFRESH_TIME_BUDGET_SECONDS, so a task stops on its own budget and saves its progress before Cloud Run kills it."
  default     = 3600

  validation {
    condition     = var.refresh_task_timeout_seconds >= 60 && var.refresh_task_timeout_seconds <= 86400
    error_message = "refresh_task_timeout_seconds must be between 60 and 86400."
  }
}

# --- Schedule ----------------------------------------------------------------

variable "refresh_schedule" {
  type        = string
  description = "Cron schedule of the morning refresh."
  default     = "0 6 * * *"
}

variable "intraday_schedule" {
  type        = string
  description = "Cron schedule (in refresh_time_zone) of the intraday run that computes today's partial row; the morning refresh replaces it. Empty: no intraday run, and the refresh function admits internal traffic only."
  default     = "30 * * * *"
}

variable "refresh_time_zone" {
  type        = string
  description = "Time zone of refresh_schedule. Dates are UTC days, so UTC keeps the run after midnight everywhere."
  default     = "Etc/UTC"
}

# --- Access and alerts -------------------------------------------------------

variable "export_invokers" {
  type        = list(string)
  description = "Principals allowed to call export (and open its /ui page), e.g. [\"user:ana@example.com\", \"group:analysts@example.com\"]."
  default     = []

  validation {
    condition = alltrue([
      for m in var.export_invokers : can(regex("^(user|group|serviceAccount|domain):", m))
    ])
    error_message = "export_invokers must be IAM members (user:, group:, serviceAccount: or domain:); allUsers and allAuthenticatedUsers are not allowed."
  }
}

variable "iap_enabled" {
  type        = bool
  description = "Serve the Analytics page (and the export) behind Identity-Aware Proxy as a second Cloud Run service, so colleagues open it with their Google account in a browser (output ui_iap_url)."
  default     = false
}

variable "iap_members" {
  type        = list(string)
  description = "Who may pass Identity-Aware Proxy (roles/iap.httpsResourceAccessor), e.g. [\"group:marketing@example.com\", \"domain:example.com\"]."
  default     = []

  validation {
    condition = alltrue([
      for m in var.iap_members : can(regex("^(user|group|serviceAccount|domain):", m))
    ])
    error_message = "iap_members must be IAM members (user:, group:, serviceAccount: or domain:); allUsers and allAuthenticatedUsers are not allowed."
  }
}

variable "alert_emails" {
  type        = list(string)
  description = "Email addresses notified by the alert policies."
  default     = []
}

variable "notification_channels" {
  type        = list(string)
  description = "Existing Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) for the alert policies."
  default     = []
}

variable "ingest_5xx_per_second" {
  type        = number
  description = "Alert when ingest answers 5xx above this rate (per second) for 10 minutes."
  default     = 0.1
}

variable "watermark_lag_alert_hours" {
  type        = number
  description = "Alert when the refresh's watermark lags the clock by more than this. Far below RETENTION_DAYS: a document deleted by its TTL before it was mirrored is lost."
  default     = 72

  validation {
    condition     = var.watermark_lag_alert_hours >= 2
    error_message = "watermark_lag_alert_hours must be at least 2: a healthy daily refresh lags up to a day."
  }
}

variable "forward_failures_per_5min" {
  type        = number
  description = "Alert when more relay forwards than this fail (bot error, timeout, refused) in 5 minutes, for 10 minutes."
  default     = 5
}

variable "auth_failures_per_5min" {
  type        = number
  description = "Alert when ingest answers more than this many 401/403 in 5 minutes (a rotated client token or key not deployed)."
  default     = 20
}

variable "rate_drop_ratio" {
  type        = number
  description = "Alert when an agent's delivery or read rate over the last 24 hours falls below this fraction of its rate over the 7 days before."
  default     = 0.5

  validation {
    condition     = var.rate_drop_ratio > 0 && var.rate_drop_ratio < 1
    error_message = "rate_drop_ratio must be between 0 and 1."
  }
}

variable "rate_min_daily_messages" {
  type        = number
  description = "Rate alerts consider an agent only with at least this many messages (sent, for the delivery rate; delivered, for the read rate) in the last 24 hours: small numbers swing too much."
  default     = 200
}

variable "silence_hours" {
  type        = number
  description = "Alert when an agent that usually has webhook events has none for this many hours."
  default     = 6

  validation {
    condition     = var.silence_hours >= 1 && var.silence_hours <= 48
    error_message = "silence_hours must be between 1 and 48."
  }
}

variable "silence_min_expected_events" {
  type        = number
  description = "An agent counts as usually active when its past 7 days average at least this many webhook events per silence_hours window."
  default     = 20
}

variable "looker_template_report_id" {
  description = "Looker Studio report to copy for the looker_studio_url output (its data sources aliased ds0, ds1, ... in view-name order); empty: a blank report on the views."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{0,128}$", var.looker_template_report_id))
    error_message = "looker_template_report_id is a Looker Studio report id (letters, digits, - and _)."
  }
}
