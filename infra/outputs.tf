locals {
  ingest_url = google_cloudfunctions2_function.fn["ingest"].service_config[0].uri
  export_url = google_cloudfunctions2_function.fn["export"].service_config[0].uri
}

output "webhook_url" {
  description = "Paste into the RBM console (agent → Integrations → webhook) with a client token from RBM_CLIENT_TOKENS."
  value       = local.ingest_url
}

output "agent_messages_url" {
  description = "Where the agent backend POSTs its sent records (Authorization: Bearer <AGENT_API_KEYS token>)."
  value       = "${local.ingest_url}/agent-messages"
}

output "refresh_url" {
  description = "The refresh function: the intraday run and backfills (POST with an identity token of a project Owner or run.invoker)."
  value       = local.refresh_url
}

output "refresh_job" {
  description = "The morning refresh job (gcloud run jobs execute NAME --region REGION)."
  value       = google_cloud_run_v2_job.refresh.name
}

output "export_url" {
  description = "CSV/JSON export (IAM: only var.export_invokers)."
  value       = local.export_url
}

output "ui_url" {
  description = "The Analytics page, served by export (IAM-protected: open it through `gcloud run services proxy`)."
  value       = "${local.export_url}/ui"
}

output "ui_iap_url" {
  description = "With iap_enabled: the Analytics page behind Identity-Aware Proxy, for iap_members in a browser. Empty otherwise."
  value       = var.iap_enabled ? "${google_cloud_run_v2_service.export_iap[0].uri}/ui" : ""
}

output "dataset" {
  description = "BigQuery dataset holding the mirror and daily tables."
  value       = "${var.project_id}.${google_bigquery_dataset.analytics.dataset_id}"
}

output "scheduler_job" {
  description = "Cloud Scheduler job of the morning refresh; it starts the refresh job (rbm-analytics schedule --job)."
  value       = google_cloud_scheduler_job.refresh.name
}

output "intraday_scheduler_job" {
  description = "Cloud Scheduler job of the hourly intraday run (empty when intraday_schedule is empty)."
  value       = local.intraday_enabled ? google_cloud_scheduler_job.intraday[0].name : ""
}

output "region" {
  description = "Region of the functions and the scheduler job."
  value       = var.region
}
