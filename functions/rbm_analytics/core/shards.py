"""The change feed's shard of a document: a small, stable hash of its id.

Every document ``ingest`` writes carries ``shard`` = the first 8 bytes of
SHA-256(document id), big-endian, modulo ``SHARD_COUNT``. The refresh reads
changes per shard (``shard == s`` and ``updated_at`` after a cursor, on the
composite index ``(shard, updated_at)``): the monotonically increasing commit
time is then spread over ``SHARD_COUNT`` index ranges instead of one, so it is
no write hotspot, and the refresh's tasks can split the shards between them.

The hash depends only on the id, so a document keeps its shard across writes,
processes and releases; ``SHARD_COUNT`` may grow later, not shrink (the
refresh reads every shard number it has ever seen).
"""

from __future__ import annotations

import hashlib

SHARD_FIELD = "shard"


def shard_of(doc_id: str, shard_count: int) -> int:
    """``doc_id``'s shard in ``0 … shard_count - 1``."""
    digest = hashlib.sha256(doc_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard_count
