# The dataset and every table of the contract, built from the same JSON files
# the code reads (functions/rbm_analytics/core/tables.py): schemas/<table>.json
# holds the columns, schemas/tables.json the partitioning, clustering and kind
# (mirror, daily or log) of each table. The views for analysts are the SQL
# files in views/ (one view per file, named after it); their table functions
# (weeks and months) are routines/<name>.sql, with their arguments in
# routines/routines.json; those marked "authorized" live in the reach dataset.
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
  # The analysts' functions live in the main dataset; the authorized ones
  # (they read the mirror and return counts only) in the reach dataset.
  analyst_routines    = { for name, r in local.routines : name => r if !try(r.authorized, false) }
  authorized_routines = { for name, r in local.routines : name => r if try(r.authorized, false) }

  # tables.reach_dataset() in the code.
  reach_dataset_id = "${var.dataset_id}_reach"
  routine_vars = {
    project       = var.project_id
    dataset       = google_bigquery_dataset.analytics.dataset_id
    reach_dataset = local.reach_dataset_id
  }
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
  for_each = local.analyst_routines

  project         = var.project_id
  dataset_id      = google_bigquery_dataset.analytics.dataset_id
  routine_id      = each.key
  routine_type    = "TABLE_VALUED_FUNCTION"
  language        = "SQL"
  description     = each.value.description
  definition_body = templatefile("${path.module}/routines/${each.key}.sql", local.routine_vars)

  dynamic "arguments" {
    for_each = each.value.arguments
    content {
      name      = arguments.value.name
      data_type = jsonencode({ typeKind = arguments.value.type })
    }
  }

  # They call the authorized functions (week and month reach).
  depends_on = [google_bigquery_table.table, google_bigquery_dataset_access.authorized_routine]
}

# Reach (distinct users per week or month) must be counted from the mirror,
# which holds user keys and postback_data that export may never read. So the
# counting is an authorized function in a dataset of its own: the main
# dataset lets it read the mirror on its callers' behalf, it returns only
# (date, agent_id, recipients, responders), and export may call it and
# nothing else in that dataset (iam.tf). The refresh cannot create any of
# this (it may neither create datasets nor change access), so Terraform does.
resource "google_bigquery_dataset" "reach" {
  #checkov:skip=CKV_GCP_81:Holds only authorized functions, no data; the data they read is in the main dataset (README Deploy on CMEK)
  project     = var.project_id
  dataset_id  = local.reach_dataset_id
  location    = var.bq_location
  description = "rbm-analytics: authorized functions counting distinct users from the mirror"

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_routine" "authorized" {
  for_each = local.authorized_routines

  project         = var.project_id
  dataset_id      = google_bigquery_dataset.reach.dataset_id
  routine_id      = each.key
  routine_type    = "TABLE_VALUED_FUNCTION"
  language        = "SQL"
  description     = each.value.description
  definition_body = templatefile("${path.module}/routines/${each.key}.sql", local.routine_vars)

  dynamic "arguments" {
    for_each = each.value.arguments
    content {
      name      = arguments.value.name
      data_type = jsonencode({ typeKind = arguments.value.type })
    }
  }

  depends_on = [google_bigquery_table.table]
}

# The main dataset's access list names each authorized function. An entry
# names a routine that existed when it was added: when the routine is
# replaced (destroyed and created again), the entry is added again with it.
resource "google_bigquery_dataset_access" "authorized_routine" {
  for_each = local.authorized_routines

  project    = var.project_id
  dataset_id = google_bigquery_dataset.analytics.dataset_id

  routine {
    project_id = var.project_id
    dataset_id = google_bigquery_dataset.reach.dataset_id
    routine_id = google_bigquery_routine.authorized[each.key].routine_id
  }

  lifecycle {
    replace_triggered_by = [google_bigquery_routine.authorized[each.key]]
  }
}
