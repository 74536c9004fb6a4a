"""The refresh's incremental read: Firestore documents changed since a cursor,
turned into rows of the BigQuery mirror tables, one bounded chunk at a time.

Queries come from ``queries.CHANGED_SINCE`` (the declared list that infra/'s
indexes are checked against): ``shard == s AND updated_at >= u`` ordered by
``updated_at`` and document id (the composite index (shard, updated_at) is
ordered that way: every index entry ends with the document name),
``start_after`` the cursor, ``select()`` of the fields the mirror needs,
``limit`` the chunk size.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from tempfile import TemporaryFile
from typing import IO, Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from rbm_analytics.core.collections import AGENT_MESSAGES, USER_EVENTS, USER_MESSAGES
from rbm_analytics.core.shards import SHARD_FIELD
from rbm_analytics.core.tables import table_defs
from rbm_analytics.core.timeutil import datetime_to_us, format_us, utc_date
from rbm_analytics.refresh.queries import QuerySpec
from rbm_analytics.refresh.watermark import Cursor

Row = dict[str, Any]


def _ts(us: object) -> str | None:
    return format_us(us) if isinstance(us, int) else None


def _updated(doc: dict[str, Any]) -> str | None:
    value = doc.get("updated_at")
    return format_us(datetime_to_us(value)) if isinstance(value, datetime) else None


def _agent_message(doc_id: str, doc: dict[str, Any]) -> Row | None:
    sent_us = doc.get("sent_at_us")
    # A receipt can arrive before the sent record: such a document is not an
    # agent message yet. The sent record's write changes updated_at, so the
    # document (receipts included) is read again by a later run.
    if not isinstance(sent_us, int) or not doc.get("agent_id") or not doc.get("user_key"):
        return None
    return {
        "message_id": doc_id,
        "agent_id": doc["agent_id"],
        "user_key": doc["user_key"],
        "sent_at": format_us(sent_us),
        "sent_date": utc_date(sent_us).isoformat(),
        "content_type": doc.get("content_type") or "other",
        "traffic_type": doc.get("traffic_type"),
        "delivered_at": _ts(doc.get("delivered_at_us")),
        "read_at": _ts(doc.get("read_at_us")),
        "updated_at": _updated(doc),
    }


def _user_message(doc_id: str, doc: dict[str, Any]) -> Row | None:
    event_us = doc.get("event_at_us")
    if not isinstance(event_us, int):
        return None
    return {
        "message_id": doc_id,
        "agent_id": doc.get("agent_id"),
        "user_key": doc.get("user_key"),
        "event_at": format_us(event_us),
        "event_date": utc_date(event_us).isoformat(),
        "kind": doc.get("kind"),
        "postback_data": doc.get("postback_data"),
        "mime_type": doc.get("mime_type"),
        "updated_at": _updated(doc),
    }


def _user_event(doc_id: str, doc: dict[str, Any]) -> Row | None:
    event_us = doc.get("event_at_us")
    if not isinstance(event_us, int):
        return None
    return {
        "event_id": doc.get("event_id"),
        "agent_id": doc.get("agent_id"),
        "user_key": doc.get("user_key"),
        "event_type": doc.get("event_type"),
        "event_at": format_us(event_us),
        "event_date": utc_date(event_us).isoformat(),
        "updated_at": _updated(doc),
    }


@dataclass(frozen=True)
class _Mapping:
    fields: tuple[str, ...]
    to_row: Callable[[str, dict[str, Any]], Row | None]
    date_column: str


MAPPINGS: dict[str, _Mapping] = {
    AGENT_MESSAGES: _Mapping(
        fields=("agent_id", "user_key", "content_type", "traffic_type", "sent_at_us",
                "delivered_at_us", "read_at_us", "updated_at"),
        to_row=_agent_message,
        date_column="sent_date",
    ),
    USER_MESSAGES: _Mapping(
        fields=("agent_id", "user_key", "kind", "postback_data", "mime_type", "event_at_us",
                "updated_at"),
        to_row=_user_message,
        date_column="event_date",
    ),
    USER_EVENTS: _Mapping(
        fields=("event_id", "agent_id", "user_key", "event_type", "event_at_us", "updated_at"),
        to_row=_user_event,
        date_column="event_date",
    ),
}  # fmt: skip


@dataclass
class MirrorBatch:
    """Changed rows of one mirror table, as NDJSON ready for a load job."""

    table: str
    file: IO[bytes]
    rows: int = 0
    min_date: date | None = None
    max_date: date | None = None
    # Every partition date among the rows: the MERGE touches exactly these.
    dates: set[date] = field(default_factory=set)

    def add(self, row: Row, row_date: date) -> None:
        self.file.write(json.dumps(row, separators=(",", ":")).encode() + b"\n")
        self.rows += 1
        self.min_date = row_date if self.min_date is None else min(self.min_date, row_date)
        self.max_date = row_date if self.max_date is None else max(self.max_date, row_date)
        self.dates.add(row_date)


@dataclass
class Chunk:
    """One bounded read of a stream: its mirror rows and where the stream now stands."""

    batch: MirrorBatch
    documents_read: int = 0
    # Position after the last document read (the cursor it was read from when empty).
    cursor: Cursor | None = None
    # Fewer documents than the limit came back: nothing more after ``cursor``.
    exhausted: bool = False
    # Documents lacking a field the mirror requires: skipped, so one damaged
    # document cannot block every later run (the first few ids are kept for the log).
    skipped: int = 0
    skipped_ids: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.batch.file.close()


def _query(
    client: firestore.Client, spec: QuerySpec, after: Cursor, limit: int, shard: int | None
) -> Any:
    query: Any = client.collection(spec.collection)
    for name in spec.equality_fields:
        if name != SHARD_FIELD or shard is None:
            raise ValueError(f"query spec for {spec.collection} needs a value for {name}")
        query = query.where(filter=FieldFilter(name, "==", shard))
    if spec.range_field:
        query = query.where(filter=FieldFilter(spec.range_field, ">=", after.updated_at))
    for name in spec.order_by:
        query = query.order_by(name)
    # Ties in updated_at are ordered by document id: every index entry ends
    # with the document name, so this needs no index of its own.
    query = query.order_by("__name__")
    if after.doc_id is not None:
        query = query.start_after({"updated_at": after.updated_at, "__name__": after.doc_id})
    return query.select(list(MAPPINGS[spec.collection].fields)).limit(limit)


@cache
def _required(table: str) -> tuple[str, ...]:
    return tuple(f["name"] for f in table_defs()[table].fields if f.get("mode") == "REQUIRED")


def read_chunk(
    client: firestore.Client,
    spec: QuerySpec,
    after: Cursor,
    limit: int,
    *,
    shard: int | None = None,
    into: MirrorBatch | None = None,
) -> Chunk:
    """Up to ``limit`` documents of ``spec``'s stream after ``after``, as mirror rows.

    Memory holds one chunk's rows (in a temporary file: on Cloud Run, memory
    too), whatever the backlog. ``into``: append the rows to that batch (of
    the same collection; its owner closes it) instead of a new one, so the
    reads of several shards are loaded and merged as one.
    """
    mapping = MAPPINGS[spec.collection]
    own = into is None
    batch = MirrorBatch(spec.collection, TemporaryFile()) if into is None else into  # noqa: SIM115
    chunk = Chunk(batch, cursor=after)
    try:
        for snap in _query(client, spec, after, limit, shard).stream():
            chunk.documents_read += 1
            doc = snap.to_dict() or {}
            updated = doc.get("updated_at")
            if isinstance(updated, datetime):
                chunk.cursor = Cursor(updated, snap.id)
            row = mapping.to_row(snap.id, doc)
            if row is None:
                continue
            if any(row.get(name) is None for name in _required(spec.collection)):
                chunk.skipped += 1
                if len(chunk.skipped_ids) < 10:
                    chunk.skipped_ids.append(f"{spec.collection}/{snap.id}")
                continue
            chunk.batch.add(row, date.fromisoformat(row[mapping.date_column]))
        chunk.exhausted = chunk.documents_read < limit
        if own:
            chunk.batch.file.seek(0)
    except BaseException:
        if own:
            chunk.close()
        raise
    return chunk
