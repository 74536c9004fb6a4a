# Firestore (native mode), the TTL policy and index settings.
#
# Every query the code makes is declared in
# functions/rbm_analytics/refresh/queries.py; a test checks that each one
# needing a composite index has a google_firestore_index below. Today all of
# them are single-field range queries on updated_at, served by Firestore's
# automatic single-field index, so none is declared.

locals {
  collections = toset(["agent_messages", "user_messages", "user_events"])

  # Timestamps no query filters or sorts on. Indexing monotonically increasing
  # values caps a collection's write rate (index hot-spotting) and costs
  # storage, so their automatic single-field indexes are switched off.
  # updated_at stays indexed: the refresh queries it.
  unindexed = {
    agent_messages = ["sent_at_us", "sent_received_at_us", "delivered_at_us", "delivered_received_at_us", "read_at_us", "read_received_at_us"]
    user_messages  = ["event_at_us", "received_at_us"]
    user_events    = ["event_at_us", "received_at_us"]
  }
  unindexed_fields = {
    for pair in flatten([
      for collection, fields in local.unindexed : [for f in fields : { collection = collection, field = f }]
    ]) : "${pair.collection}/${pair.field}" => pair
  }
}

resource "google_firestore_database" "db" {
  project                           = var.project_id
  name                              = var.firestore_database
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = "DELETE"

  depends_on = [google_project_service.apis]
}

# TTL on expire_at (RETENTION_DAYS after the write). The empty index_config
# also drops expire_at's single-field indexes: nothing queries it.
resource "google_firestore_field" "ttl" {
  for_each = local.collections

  project    = var.project_id
  database   = google_firestore_database.db.name
  collection = each.value
  field      = "expire_at"

  ttl_config {}
  index_config {}
}

resource "google_firestore_field" "unindexed" {
  for_each = local.unindexed_fields

  project    = var.project_id
  database   = google_firestore_database.db.name
  collection = each.value.collection
  field      = each.value.field

  index_config {}
}
