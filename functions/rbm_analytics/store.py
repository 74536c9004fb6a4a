"""Firestore storage of ingested records (SPEC §2.4).

Layout, one document per RBM id:

    agent_messages/{messageId}   sent record + earliest DELIVERED / READ
    user_messages/{messageId}    one user message (kind, postback, MIME type)
    user_events/{sha256(agent, eventId, user)}   IS_TYPING, SUBSCRIBE, server events

Every write is one blind round trip, no read and no transaction:

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
from google.cloud.firestore_v1 import transforms

from .errors import ServiceUnavailable
from .records import AgentMessage, Receipt, UserEvent, UserMessage, WebhookRecord, WriteCounts

AGENT_MESSAGES = "agent_messages"
USER_MESSAGES = "user_messages"
USER_EVENTS = "user_events"
COLLECTIONS = (AGENT_MESSAGES, USER_MESSAGES, USER_EVENTS)

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


def _transform_result(write_result: Any, transform_fields: Sequence[str], field: str) -> int:
    # The client sends field transforms sorted by path and the server answers
    # in that order (checked against the emulator in the integration tests).
    index = sorted(transform_fields).index(field)
    return int(write_result.transform_results[index].integer_value)


class FirestoreStore:
    """Writes records to Firestore; every storage failure becomes ServiceUnavailable."""

    def __init__(self, client: firestore.Client, *, retention_days: int, deadline_s: float) -> None:
        self._client = client
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
            return self._create(USER_MESSAGES, record.message_id, self._user_message(record))
        doc_id = user_event_id(record.agent_id, record.event_id, record.user_key)
        return self._create(USER_EVENTS, doc_id, self._user_event(record))

    def put_agent_messages(self, records: Sequence[AgentMessage]) -> WriteCounts:
        """All records in one batch commit (atomic: all stored or none)."""
        unique: dict[str, AgentMessage] = {}
        for rec in records:
            kept = unique.get(rec.message_id)
            if kept is None or rec.sent_us < kept.sent_us:
                unique[rec.message_id] = rec
        in_request_duplicates = len(records) - len(unique)
        batch = self._client.batch()
        for rec in unique.values():
            batch.set(self._doc(AGENT_MESSAGES, rec.message_id), self._sent(rec), merge=True)
        results = self._call(lambda: batch.commit(retry=self._retry, timeout=self._deadline_s))
        first = sum(
            1
            for res in results
            if _transform_result(res, self._SENT_TRANSFORMS, "sent_copies") == 1
        )
        return WriteCounts(stored=first, duplicate=len(unique) - first + in_request_duplicates)

    # -- documents ------------------------------------------------------------
    _SENT_TRANSFORMS = ("sent_at_us", "sent_received_at_us", "sent_copies", "updated_at")

    def _sent(self, rec: AgentMessage) -> dict[str, Any]:
        return {
            "agent_id": rec.agent_id,
            "user_key": rec.user_key,
            "content_type": rec.content_type,
            "traffic_type": rec.traffic_type,
            "sent_at_us": transforms.Minimum(rec.sent_us),
            "sent_received_at_us": transforms.Minimum(rec.received_us),
            "sent_copies": transforms.Increment(1),
            "updated_at": transforms.SERVER_TIMESTAMP,
            "expire_at": self._expiry(),
        }

    def _put_receipt(self, rec: Receipt) -> WriteCounts:
        prefix = "delivered" if rec.receipt == "DELIVERED" else "read"
        fields = {
            f"{prefix}_at_us": transforms.Minimum(rec.event_us),
            f"{prefix}_received_at_us": transforms.Minimum(rec.received_us),
            f"{prefix}_copies": transforms.Increment(1),
            "updated_at": transforms.SERVER_TIMESTAMP,
            "expire_at": self._expiry(),
        }
        ref = self._doc(AGENT_MESSAGES, rec.message_id)
        result = self._call(
            lambda: ref.set(fields, merge=True, retry=self._retry, timeout=self._deadline_s)
        )
        transformed = [k for k, v in fields.items() if k != "expire_at"]
        first = _transform_result(result, transformed, f"{prefix}_copies") == 1
        return WriteCounts(stored=1) if first else WriteCounts(duplicate=1)

    def _user_message(self, rec: UserMessage) -> dict[str, Any]:
        return {
            "agent_id": rec.agent_id,
            "user_key": rec.user_key,
            "kind": rec.kind,
            "postback_data": rec.postback_data,
            "mime_type": rec.mime_type,
            "event_at_us": rec.event_us,
            "received_at_us": rec.received_us,
            "updated_at": transforms.SERVER_TIMESTAMP,
            "expire_at": self._expiry(),
        }

    def _user_event(self, rec: UserEvent) -> dict[str, Any]:
        return {
            "event_id": rec.event_id,
            "agent_id": rec.agent_id,
            "user_key": rec.user_key,
            "event_type": rec.event_type,
            "message_id": rec.message_id,
            "event_at_us": rec.event_us,
            "received_at_us": rec.received_us,
            "updated_at": transforms.SERVER_TIMESTAMP,
            "expire_at": self._expiry(),
        }

    def _create(self, collection: str, doc_id: str, data: dict[str, Any]) -> WriteCounts:
        ref = self._doc(collection, doc_id)
        try:
            self._call(lambda: ref.create(data, retry=self._retry, timeout=self._deadline_s))
        except _Duplicate:
            return WriteCounts(duplicate=1)
        return WriteCounts(stored=1)

    def _doc(self, collection: str, doc_id: str) -> Any:
        return self._client.collection(collection).document(doc_id)

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
