"""``rbm-analytics backfill-shards``: give documents written before shards theirs (run once).

The refresh reads the change feed per shard (``shard == s`` and
``updated_at`` after a cursor). A document written by a version of ingest
that wrote no ``shard`` field is found by none of those queries. This
command walks each collection in document-id order, pages of ``--page``
documents, and sets on every document without the field its shard (the same
``shard_of(id)`` ingest writes) and ``updated_at`` (the server's commit time),
so the next refresh reads it again: a document changed just before the
upgrade and not yet mirrored is mirrored, one already mirrored is merged
again unchanged. Documents that have a shard are not written.

Safe to run while ingest runs (ingest writes the same shard; a receipt that
races it is retried by ingest's own precondition) and to run again: the
second run finds nothing to do. Prints the documents updated per collection.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from rbm_analytics.core import clients
from rbm_analytics.core.collections import AGENT_MESSAGES, USER_EVENTS, USER_MESSAGES
from rbm_analytics.core.config import get_settings
from rbm_analytics.core.shards import SHARD_FIELD, shard_of

COLLECTIONS = (AGENT_MESSAGES, USER_MESSAGES, USER_EVENTS)
# Documents listed per query (one page in memory).
MAX_BATCH = 500

EPILOG = """examples:
  rbm-analytics backfill-shards       # once, after deploying the version that writes shards
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "backfill-shards",
        help="set the shard field on documents written before ingest wrote it (once)",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--page", type=int, default=MAX_BATCH, help="documents read per query (default 500)"
    )
    parser.set_defaults(func=main)


def backfill(client: firestore.Client, shard_count: int, page: int = MAX_BATCH) -> dict[str, int]:
    """Set ``shard`` (and bump ``updated_at``) on every document lacking it; counts updated."""
    page = max(1, min(page, MAX_BATCH))
    updated: dict[str, int] = {}
    for collection in COLLECTIONS:
        updated[collection] = 0
        after: Any = None
        while True:
            query = client.collection(collection).select([SHARD_FIELD]).order_by("__name__")
            if after is not None:
                query = query.start_after(after)
            snaps = list(query.limit(page).stream())
            missing = [s for s in snaps if SHARD_FIELD not in (s.to_dict() or {})]
            for snap in missing:
                try:
                    snap.reference.update(
                        {
                            SHARD_FIELD: shard_of(snap.id, shard_count),
                            "updated_at": firestore.SERVER_TIMESTAMP,
                        }
                    )
                except gexc.NotFound:
                    continue  # expired (TTL) since it was listed: nothing to read
                updated[collection] += 1
            if len(snaps) < page:
                break
            after = snaps[-1]
    return updated


def main(args: argparse.Namespace) -> int:
    try:
        updated = backfill(clients.firestore_client(), get_settings().shard_count, args.page)
    except gexc.GoogleAPICallError as exc:
        print(f"rbm-analytics backfill-shards: failed: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps({"updated": updated}, indent=2))
    return 0
