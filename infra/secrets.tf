# Secret Manager secrets, without versions: values never pass through
# Terraform state or this repository. Add them with
#   printf %s "$VALUE" | gcloud secrets versions add NAME --data-file=-
# (README "Deploy").
locals {
  secrets = toset(["RBM_CLIENT_TOKENS", "AGENT_API_KEYS", "PHONE_HASH_KEY", "PUBSUB_PUSH_TOKENS"])

  # Which function reads which secret. Only ingest authenticates callers
  # and hashes phone numbers; refresh and export never see a secret.
  function_secrets = {
    ingest  = ["RBM_CLIENT_TOKENS", "AGENT_API_KEYS", "PHONE_HASH_KEY", "PUBSUB_PUSH_TOKENS"]
    refresh = []
    export  = []
  }

  secret_grants = merge([
    for fn, names in local.function_secrets : {
      for name in names : "${fn}/${name}" => { function = fn, secret = name }
    }
  ]...)
}

resource "google_secret_manager_secret" "secret" {
  for_each = local.secrets

  project   = var.project_id
  secret_id = each.value

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.secret_grants

  project   = var.project_id
  secret_id = google_secret_manager_secret.secret[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa[each.value.function].member
}
