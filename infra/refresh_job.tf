# The morning refresh as a Cloud Run job: refresh_tasks tasks in parallel,
# each reading its share of the change feed's shards (CLOUD_RUN_TASK_INDEX of
# CLOUD_RUN_TASK_COUNT), in bounded chunks with a watermark per shard.
#
# The image is the refresh function's own: Cloud Functions builds it with
# Cloud Build and Google's Python buildpack from the same source zip
# (functions.tf) into the images repository, so the job runs exactly the code
# the function runs. A buildpack image prepares its runtime (python on PATH,
# the installed requirements) in its launcher, so the job's command goes
# through the launcher.

locals {
  refresh_job_module = "rbm_analytics.refresh.job"
  refresh_image      = data.google_cloud_run_v2_service.refresh_function.template[0].containers[0].image

  # Run Admin API v2: jobs.run starts an execution and returns at once.
  refresh_job_run_url = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${google_cloud_run_v2_job.refresh.name}:run"
}

# The Cloud Run service behind the refresh function (its name is known once
# the function exists, so this is read after the function is deployed).
data "google_cloud_run_v2_service" "refresh_function" {
  project  = var.project_id
  location = var.region
  name     = basename(google_cloudfunctions2_function.fn["refresh"].service_config[0].service)
}

resource "google_cloud_run_v2_job" "refresh" {
  project  = var.project_id
  name     = "${var.name_prefix}-refresh-job"
  location = var.region
  # The job holds no data (the dataset and Firestore do).
  deletion_protection = false

  template {
    task_count  = var.refresh_tasks
    parallelism = var.refresh_tasks

    template {
      service_account = google_service_account.sa["refresh"].email
      timeout         = "${var.refresh_task_timeout_seconds}s"
      # A failed task is retried; per-shard watermarks make the retry resume
      # after the last committed chunk.
      max_retries = 3

      containers {
        image   = local.refresh_image
        command = ["launcher"]
        args    = ["python", "-m", local.refresh_job_module]

        dynamic "env" {
          for_each = local.env
          content {
            name  = env.key
            value = env.value
          }
        }

        resources {
          limits = {
            cpu    = "1"
            memory = var.refresh_memory
          }
        }
      }
    }
  }

  depends_on = [
    google_project_iam_member.firestore_user,
    google_bigquery_dataset_iam_member.refresh_editor,
    google_project_iam_member.bigquery_job_user,
  ]
}
