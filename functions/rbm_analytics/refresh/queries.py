"""Every Firestore query the code makes, declared once.

The emulator does not enforce composite indexes, production does. Readers
build their queries from these specs, and a test checks that infra/ declares
an index for each spec that needs a composite one, so a query cannot reach
production without its index.
"""

from __future__ import annotations

from dataclasses import dataclass

from rbm_analytics.core.collections import AGENT_MESSAGES, USER_EVENTS, USER_MESSAGES
from rbm_analytics.core.shards import SHARD_FIELD
from rbm_analytics.refresh.watermark import DATASET_FIELD, STREAMS_COLLECTION


@dataclass(frozen=True)
class QuerySpec:
    collection: str
    equality_fields: tuple[str, ...]
    range_field: str | None
    order_by: tuple[str, ...]

    @property
    def needs_composite_index(self) -> bool:
        """Single-field queries use Firestore's automatic indexes."""
        fields = set(self.equality_fields) | set(self.order_by)
        if self.range_field:
            fields.add(self.range_field)
        return len(fields) > 1


# The refresh's incremental read: one shard's documents changed since its
# cursor (``shard == s AND updated_at >= u`` ordered by updated_at), on the
# composite index (shard, updated_at).
CHANGED_SINCE = tuple(
    QuerySpec(
        collection=c,
        equality_fields=(SHARD_FIELD,),
        range_field="updated_at",
        order_by=("updated_at",),
    )
    for c in (AGENT_MESSAGES, USER_MESSAGES, USER_EVENTS)
)

# The refresh's own state: a dataset's per-stream cursor documents
# (``dataset == d``, ``watermark.load``), on the automatic single-field index.
STREAM_STATE = QuerySpec(
    collection=STREAMS_COLLECTION,
    equality_fields=(DATASET_FIELD,),
    range_field=None,
    order_by=(),
)

FIRESTORE_QUERIES: tuple[QuerySpec, ...] = (*CHANGED_SINCE, STREAM_STATE)
