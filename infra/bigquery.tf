# The dataset and every table of the contract, built from the same JSON files
# the code reads (functions/rbm_analytics/core/tables.py): schemas/<table>.json
# holds the columns, schemas/tables.json the partitioning, clustering and kind
# (mirror, daily or log) of each table. The views for analysts are the SQL
# files in views/ (one view per file, named after it); their table functions
# (weeks and months) are routines/<name>.sql, with their arguments in
# routines/routines.json.
#
# What the dataset holds: the mirror tables keep one row per message or
# event with the user's keyed hash (user_key, never a phone number), its
# times and postback_data; the daily tables keep counts, durations and
# postback counts per agent and day.

locals {
  tables = jsondecode(file("${path.module}/schemas/tables.json"))

  mirror_partition_expiration_ms = var.mirror_retention_days * 86400000

  # What export may read (iam.tf): the daily tables, never the mirror.
  export_tables = toset([for name, table in local.tables : name if table.kind == "daily"])

  views = { for f in fileset("${path.module}/views", "*.sql") : trimsuffix(f, ".sql") => f }

  routines = jsondecode(file("${path.module}/routines/routines.json"))
}

resource "google_bigquery_dataset" "analytics" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption at rest; no phone numbers or message text, but user keys, per-user times and postback_data (README Deploy on CMEK)
  project     = var.project_id
  dataset_id  = var.dataset_id
  location    = var.bq_location
  description = "rbm-analytics: raw mirror of RBM events and daily metrics"

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "table" {
  #checkov:skip=CKV_GCP_80:Google-managed encryption at rest; no phone numbers or message text, but user keys, per-user times and postback_data (README Deploy on CMEK)
  for_each = local.tables

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.analytics.dataset_id
  table_id            = each.key
  schema              = file("${path.module}/schemas/${each.key}.json")
  clustering          = length(each.value.cluster_fields) > 0 ? each.value.cluster_fields : null
  deletion_protection = var.deletion_protection

  dynamic "time_partitioning" {
    for_each = each.value.partition_field == null ? [] : [each.value.partition_field]
    content {
      type  = "DAY"
      field = time_partitioning.value
      # Only the raw mirror ages out; the daily tables are the history.
      expiration_ms = each.value.kind == "mirror" && var.mirror_retention_days > 0 ? local.mirror_partition_expiration_ms : null
    }
  }
}

# The analysts' views, each from its SQL file with the project and dataset
# filled in. A view stores no data; a changed file updates it in place.
resource "google_bigquery_table" "view" {
  #checkov:skip=CKV_GCP_80:A view stores no data, so there is nothing to encrypt; its tables use Google-managed encryption
  for_each = local.views

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.analytics.dataset_id
  table_id            = each.key
  deletion_protection = var.deletion_protection

  view {
    query = templatefile("${path.module}/views/${each.value}", {
      project = var.project_id
      dataset = google_bigquery_dataset.analytics.dataset_id
    })
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.table]
}

# The analysts' table functions (weeks and months need the period's own
# samples, and a table function's date arguments reach each table's
# partition filter, which a view grouped by week cannot offer). The file's
# body is a query; the arguments come from routines.json, as ensure_tables
# reads them.
resource "google_bigquery_routine" "routine" {
  for_each = local.routines

  project      = var.project_id
  dataset_id   = google_bigquery_dataset.analytics.dataset_id
  routine_id   = each.key
  routine_type = "TABLE_VALUED_FUNCTION"
  language     = "SQL"
  description  = each.value.description
  definition_body = templatefile("${path.module}/routines/${each.key}.sql", {
    project = var.project_id
    dataset = google_bigquery_dataset.analytics.dataset_id
  })

  dynamic "arguments" {
    for_each = each.value.arguments
    content {
      name      = arguments.value.name
      data_type = jsonencode({ typeKind = arguments.value.type })
    }
  }

  depends_on = [google_bigquery_table.table]
}
