# Firestore (native mode), the TTL policy and index settings.
#
# Every query the code makes is declared in
# functions/rbm_analytics/refresh/queries.py; a test checks that each one
# needing a composite index has a google_firestore_index below, and that no
# exemption switches off a field a single-field query needs. The refresh's
# per-stream cursors (refresh_state/mirror/streams) need no setting here: they
# are read with "dataset ==" on the automatic single-field index and written
# a few dozen times a second at most, far from any index limit.
#
# A project that already runs an agent often has a "(default)" database.
# Either adopt it unmanaged (create_firestore_database = false: the TTL
# policies and indexes below are still applied to it, and `make destroy`
# never deletes it), or manage it by importing it before the first apply:
#   terraform -chdir=infra import 'google_firestore_database.db[0]' 'projects/PROJECT_ID/databases/(default)'

locals {
  collections = toset(["agent_messages", "user_messages", "user_events"])

  # Timestamps no single-field query filters or sorts on. Indexing
  # monotonically increasing values caps a collection's write rate (index
  # hot-spotting) and costs storage, so their automatic single-field indexes
  # are switched off. updated_at is among them: the refresh reads it only
  # through the composite (shard, updated_at) index below, whose leading
  # shard spreads the writes over SHARD_COUNT ranges.
  unindexed = {
    agent_messages = ["sent_at_us", "sent_received_at_us", "delivered_at_us", "delivered_received_at_us", "read_at_us", "read_received_at_us", "updated_at"]
    user_messages  = ["event_at_us", "received_at_us", "updated_at"]
    user_events    = ["event_at_us", "received_at_us", "updated_at"]
  }
  unindexed_fields = {
    for pair in flatten([
      for collection, fields in local.unindexed : [for f in fields : { collection = collection, field = f }]
    ]) : "${pair.collection}/${pair.field}" => pair
  }

  # The database the fields and indexes below belong to: created here, or
  # adopted as it is. Referencing the resource orders them after its creation.
  firestore_database = var.create_firestore_database ? google_firestore_database.db[0].name : var.firestore_database
}

resource "google_firestore_database" "db" {
  count = var.create_firestore_database ? 1 : 0

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
  database   = local.firestore_database
  collection = each.value
  field      = "expire_at"

  ttl_config {}
  index_config {}
}

resource "google_firestore_field" "unindexed" {
  for_each = local.unindexed_fields

  project    = var.project_id
  database   = local.firestore_database
  collection = each.value.collection
  field      = each.value.field

  index_config {}
}

# The change feed: each shard's documents in update order. ingest writes a
# small shard number (a hash of the document id mod SHARD_COUNT) on every
# document, and the refresh reads "shard == s, updated_at after a cursor"
# per shard, so the monotonically increasing update time is indexed in
# SHARD_COUNT separate ranges instead of one write hotspot. Firestore appends
# __name__ in the last field's direction, the order the refresh's cursor
# (updated_at, document id) follows.
resource "google_firestore_index" "shard_updated" {
  for_each = local.collections

  project     = var.project_id
  database    = local.firestore_database
  collection  = each.value
  query_scope = "COLLECTION"

  fields {
    field_path = "shard"
    order      = "ASCENDING"
  }
  fields {
    field_path = "updated_at"
    order      = "ASCENDING"
  }
}
