"""Firestore storage of ingested records (docs/contract.md §2.4).

Layout, one document per RBM id:

    agent_messages/{messageId}   sent record + earliest DELIVERED / READ
    user_messages/{messageId}    one user message (kind, postback, MIME type)
    user_events/{sha256(agent, eventId, user)}   IS_TYPING, SUBSCRIBE, server events

Every write is one blind round trip (one Commit RPC), no read and no
transaction:

* agent messages merge. Times are integer microseconds under a ``Minimum``
  transform, so the earliest sent time, DELIVERED and READ win whatever order
  the copies arrive in, and a receipt that lands before the sent record simply
  waits in the same document. An ``Increment`` on a per-kind copy counter comes
  back in the write result and tells a first copy from a duplicate.
* user messages and user events are immutable, written with ``create()``;
  ``AlreadyExists`` means a duplicate.

``updated_at`` is Firestore's commit time (server timestamp): the refresh reads
documents changed since its watermark. ``expire_at`` feeds the TTL policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import firestore

from rbm_analytics.core import clients
from rbm_analytics.core.collections import AGENT_MESSAGES, USER_EVENTS, USER_MESSAGES
from rbm_analytics.core.config import get_settings
from rbm_analytics.core.errors import ServiceUnavailable
from rbm_analytics.ingest.records import (
    AgentMessage,
    Receipt,
    UserEvent,
    UserMessage,
    WebhookRecord,
    WriteCounts,
)
from rbm_analytics.ingest.writes import Committer, DocWrite, Transform, integer_result

# Fields that count copies rather than describe the message: they differ
# between a clean delivery and one with duplicates, by design.
COPY_COUNTERS = ("sent_copies", "delivered_copies", "read_copies")

T = TypeVar("T")


class Store(Protocol):
    """What ingest needs from storage (a Protocol, so tests can swap backends)."""

    def put(self, record: WebhookRecord) -> WriteCounts: ...

    def put_agent_messages(self, records: Sequence[AgentMessage]) -> WriteCounts: ...


def user_event_id(agent_id: str, event_id: str, user_key: str) -> str:
    """Document id for RBM's documented duplicate key (agentId, eventId, user)."""
    return hashlib.sha256(f"{agent_id}\x1f{event_id}\x1f{user_key}".encode()).hexdigest()


class FirestoreStore:
    """Writes records to Firestore; every storage failure becomes ServiceUnavailable."""

    def __init__(self, client: firestore.Client, *, retention_days: int, deadline_s: float) -> None:
        self._committer = Committer(client)
        self._retention = timedelta(days=retention_days)
        self._deadline_s = deadline_s
        # Retries transient errors, but never past the deadline: the sender
        # gets a 503 in bounded time instead of a hung request.
        self._retry = gretry.Retry(
            initial=0.1,
            maximum=1.0,
            multiplier=2.0,
            timeout=deadline_s,
            predicate=gretry.if_transient_error,
        )

    # -- writes -------------------------------------------------------------
    def put(self, record: WebhookRecord) -> WriteCounts:
        if isinstance(record, Receipt):
            return self._put_receipt(record)
        if isinstance(record, UserMessage):
            return self._create(self.user_message_write(record))
        return self._create(self.user_event_write(record))

    def put_agent_messages(self, records: Sequence[AgentMessage]) -> WriteCounts:
        """All records in one batch commit (atomic: all stored or none)."""
        unique: dict[str, AgentMessage] = {}
        for rec in records:
            kept = unique.get(rec.message_id)
            if kept is None or rec.sent_us < kept.sent_us:
                unique[rec.message_id] = rec
        in_request_duplicates = len(records) - len(unique)
        writes = [self.sent_write(rec) for rec in unique.values()]
        results = self._commit(writes)
        first = sum(
            1
            for res, doc in zip(results, writes, strict=True)
            if integer_result(res, doc, "sent_copies") == 1
        )
        return WriteCounts(stored=first, duplicate=len(unique) - first + in_request_duplicates)

    # -- documents ------------------------------------------------------------
    def sent_write(self, rec: AgentMessage) -> DocWrite:
        return DocWrite(
            AGENT_MESSAGES,
            rec.message_id,
            fields={
                "agent_id": rec.agent_id,
                "user_key": rec.user_key,
                "content_type": rec.content_type,
                "traffic_type": rec.traffic_type,
                "expire_at": self._expiry(),
            },
            transforms=(
                Transform("sent_at_us", "minimum", rec.sent_us),
                Transform("sent_received_at_us", "minimum", rec.received_us),
                Transform("sent_copies", "increment", 1),
                Transform("updated_at", "server_time"),
            ),
        )

    def receipt_write(self, rec: Receipt) -> DocWrite:
        prefix = "delivered" if rec.receipt == "DELIVERED" else "read"
        return DocWrite(
            AGENT_MESSAGES,
            rec.message_id,
            fields={"expire_at": self._expiry()},
            transforms=(
                Transform(f"{prefix}_at_us", "minimum", rec.event_us),
                Transform(f"{prefix}_received_at_us", "minimum", rec.received_us),
                Transform(f"{prefix}_copies", "increment", 1),
                Transform("updated_at", "server_time"),
            ),
        )

    def user_message_write(self, rec: UserMessage) -> DocWrite:
        return DocWrite(
            USER_MESSAGES,
            rec.message_id,
            fields={
                "agent_id": rec.agent_id,
                "user_key": rec.user_key,
                "kind": rec.kind,
                "postback_data": rec.postback_data,
                "mime_type": rec.mime_type,
                "event_at_us": rec.event_us,
                "received_at_us": rec.received_us,
                "expire_at": self._expiry(),
            },
            transforms=(Transform("updated_at", "server_time"),),
            create=True,
        )

    def user_event_write(self, rec: UserEvent) -> DocWrite:
        return DocWrite(
            USER_EVENTS,
            user_event_id(rec.agent_id, rec.event_id, rec.user_key),
            fields={
                "event_id": rec.event_id,
                "agent_id": rec.agent_id,
                "user_key": rec.user_key,
                "event_type": rec.event_type,
                "message_id": rec.message_id,
                "event_at_us": rec.event_us,
                "received_at_us": rec.received_us,
                "expire_at": self._expiry(),
            },
            transforms=(Transform("updated_at", "server_time"),),
            create=True,
        )

    def _put_receipt(self, rec: Receipt) -> WriteCounts:
        doc = self.receipt_write(rec)
        (result,) = self._commit([doc])
        copies = doc.transforms[2].field
        return (
            WriteCounts(stored=1)
            if integer_result(result, doc, copies) == 1
            else WriteCounts(duplicate=1)
        )

    def _create(self, doc: DocWrite) -> WriteCounts:
        try:
            self._commit([doc])
        except _Duplicate:
            return WriteCounts(duplicate=1)
        return WriteCounts(stored=1)

    def _commit(self, docs: list[DocWrite]) -> list[Any]:
        return self._call(lambda: self._committer.commit(docs, self._retry, self._deadline_s))

    def _expiry(self) -> datetime:
        return datetime.now(UTC) + self._retention

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except gexc.AlreadyExists:
            raise _Duplicate() from None
        except Exception as exc:
            # Anything that goes wrong while storing must make the sender
            # retry: a 503, never a 200 and never a 500 it might give up on.
            raise ServiceUnavailable(
                f"storage is unavailable ({type(exc).__name__}); retry later"
            ) from exc


class _Duplicate(Exception):
    """A create() found the document already stored."""


@clients.instance_cache
def event_store() -> FirestoreStore:
    """The instance's store, over the cached Firestore client."""
    settings = get_settings()
    return FirestoreStore(
        clients.firestore_client(),
        retention_days=settings.retention_days,
        deadline_s=settings.firestore_deadline_s,
    )
