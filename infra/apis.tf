# The Google APIs the deployment uses. Left enabled on destroy: other
# workloads in the project may rely on them.
locals {
  services = toset([
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])

  # Identity-Aware Proxy only when the Analytics page goes behind it (iap.tf).
  enabled_services = var.iap_enabled ? setunion(local.services, ["iap.googleapis.com"]) : local.services
}

resource "google_project_service" "apis" {
  for_each = local.enabled_services

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
