# Optional (iap_enabled): the Analytics page for the whole team, behind
# Identity-Aware Proxy. Colleagues open ui_iap_url in a browser and sign in
# with their Google account; only iap_members pass.
#
# IAP cannot be switched on for the service a Cloud Function manages, so this
# is a second Cloud Run service running the export function's own image (the
# same build, the same settings and service account). IAP is enabled on the
# service itself (no load balancer); it then protects every way in, the
# run.app URL included. IAP calls the service as its service agent, the only
# principal with run.invoker on it. The export function itself stays as it
# is, for CSV clients with identity tokens (export_invokers).

locals {
  iap_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-iap.iam.gserviceaccount.com"
}

data "google_cloud_run_v2_service" "export_function" {
  count = var.iap_enabled ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = basename(google_cloudfunctions2_function.fn["export"].service_config[0].service)
}

# Creates IAP's service agent now, so the invoker grant below can name it.
resource "google_project_service_identity" "iap" {
  count    = var.iap_enabled ? 1 : 0
  provider = google-beta

  project = var.project_id
  service = "iap.googleapis.com"

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service" "export_iap" {
  count    = var.iap_enabled ? 1 : 0
  provider = google-beta

  project  = var.project_id
  name     = "${var.name_prefix}-export-iap"
  location = var.region
  # Direct IAP on Cloud Run is a preview feature.
  launch_stage        = "BETA"
  iap_enabled         = true
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false

  template {
    service_account                  = google_service_account.sa["export"].email
    timeout                          = "300s"
    max_instance_request_concurrency = local.functions.export.concurrency

    scaling {
      min_instance_count = 0
      max_instance_count = var.export_max_instances
    }

    containers {
      image = data.google_cloud_run_v2_service.export_function[0].template[0].containers[0].image

      # FUNCTION_TARGET repeats the entry point the image was built for.
      dynamic "env" {
        for_each = merge(local.env, {
          THREADS         = tostring(local.functions.export.concurrency)
          FUNCTION_TARGET = local.functions.export.entry_point
        })
        content {
          name  = env.key
          value = env.value
        }
      }

      resources {
        limits = {
          cpu    = local.functions.export.cpu
          memory = local.functions.export.memory
        }
      }
    }
  }

  depends_on = [
    google_bigquery_table_iam_member.export_table_reader,
    google_project_iam_member.bigquery_job_user,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "export_iap_agent" {
  count    = var.iap_enabled ? 1 : 0
  provider = google-beta

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.export_iap[0].name
  role     = "roles/run.invoker"
  member   = local.iap_service_agent

  depends_on = [google_project_service_identity.iap]
}

resource "google_iap_web_cloud_run_service_iam_member" "export_iap_members" {
  for_each = var.iap_enabled ? toset(var.iap_members) : toset([])

  project                = var.project_id
  location               = var.region
  cloud_run_service_name = google_cloud_run_v2_service.export_iap[0].name
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = each.value
}
