locals {
  # The Looker Studio Linking API (README "Views for analysts"): the i-th
  # view in name order is data source ds<i>; with connector given, each data
  # source is replaced whole, so every BigQuery TABLE parameter is set. Ids
  # and view names need no URL encoding (letters, digits, - _ : only).
  looker_params = concat(
    var.looker_template_report_id == "" ? [] : ["c.reportId=${var.looker_template_report_id}"],
    ["r.reportName=RBM%20Analytics"],
    flatten([for i, view in sort(keys(local.views)) : [
      "ds.ds${i}.connector=bigQuery",
      "ds.ds${i}.type=TABLE",
      "ds.ds${i}.projectId=${var.project_id}",
      "ds.ds${i}.datasetId=${google_bigquery_dataset.analytics.dataset_id}",
      "ds.ds${i}.tableId=${view}",
    ]]),
  )
  looker_studio_url = "https://lookerstudio.google.com/reporting/create?${join("&", local.looker_params)}"

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

output "looker_studio_url" {
  description = "Open in a browser: a Looker Studio report (a copy of looker_template_report_id, or blank) whose data sources ds0, ds1, ... are the views (rbm-analytics looker-link prints the same URL)."
  value       = local.looker_studio_url
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
