"""Firestore storage of ingested records (docs/contract.md §2.4, §6.2).

Layout, one document per RBM id:

    agent_messages/{messageId}   owner agent, sent record, earliest DELIVERED / READ
    user_messages/{messageId}    one user message (kind, postback, MIME type)
    user_events/{sha256(agent, eventId, user)}   IS_TYPING, SUBSCRIBE, server events

A message id belongs to the agent it was first stored for. ``agent_id`` is
written when the document is created — by the sent record or by a receipt
that arrived first — and never changes: a sent record or receipt naming
another agent changes nothing (a conflict), and a copy that would change
nothing is a duplicate, which writes nothing at all (``updated_at`` included,
so the refresh does not even see it again).

How, with at most one write round trip per event and no transaction
(optimistic concurrency):

    read  agent_messages/{id}: agent_id and the stored times, with the
          document's update time (one BatchGetDocuments; 500 ids in a batch)
    decide  absent          -> create it            (precondition exists=false)
            other agent     -> conflict, no write
            nothing earlier -> write the new times  (precondition update_time
                               = the read's: only if nobody wrote in between)
            else            -> duplicate, no write
    commit  one Commit RPC; a precondition that fails means another request
            changed the document between the read and the write: read again
            and decide again (at most ``MAX_ATTEMPTS`` times, then 503)

Why not a blind write: Firestore preconditions test only a document's
existence and update time, and no field transform compares strings, so a
write that does not know the owner cannot avoid changing another agent's
document (even ``updated_at`` and a copy counter would change). A guard
document per (agent, message) would keep one round trip but doubles every
write, adds a collection to expire, and still needs two round trips when a
receipt arrives before its sent record. A read is cheaper than a write, never
locks, and lets a duplicate cost no write at all. Contention is limited to
two requests for the same message within one round trip of each other (a
DELIVERED and a READ, say); the loser reads again.

User messages and user events are immutable and written with ``create()``
(one round trip); ``AlreadyExists`` is a duplicate — or, for a user message
whose id another agent already used, a conflict (only then is it read).

Each flow is one coroutine that awaits its reads and commits (the deployed
function's requests are coroutines on one event loop), with nothing between
a flow and its calls: a layer of steps that could run the same flow blocking
or awaited cost the handler about a tenth of its CPU per event
(``make bench``: ingest.handler_cpu_per_event).

``updated_at`` is Firestore's commit time (server timestamp): the refresh reads
documents changed since its watermark. ``shard`` (``core.shards``, from the
document id alone, so every write of a document repeats the same value) spreads
that index over SHARD_COUNT ranges. ``expire_at`` feeds the TTL policy.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import firestore

from rbm_analytics.core import clients
from rbm_analytics.core.collections import AGENT_MESSAGES, USER_EVENTS, USER_MESSAGES
from rbm_analytics.core.config import Settings, get_settings
from rbm_analytics.core.errors import Unavailable
from rbm_analytics.core.shards import SHARD_FIELD, shard_of
from rbm_analytics.ingest.records import (
    AgentMessage,
    Receipt,
    UserEvent,
    UserMessage,
    WebhookRecord,
    WriteCounts,
)
from rbm_analytics.ingest.writes import Committer, DocWrite, Snapshot, Transform

# What deciding an agent message write needs to know about the stored one.
AGENT_MESSAGE_STATE = ("agent_id", "sent_at_us", "delivered_at_us", "read_at_us")
# Reads-and-writes per request before giving up with a 503 (the sender
# retries): each extra attempt means another request changed the same
# document within one round trip.
MAX_ATTEMPTS = 5
# Every write sets ``updated_at`` to the commit time: what the refresh reads by.
_UPDATED_AT = (Transform("updated_at", "server_time"),)
T = TypeVar("T")
# A receipt's two fields: when it happened, and when ingest received it.
_RECEIPT_FIELDS: dict[str, tuple[str, str]] = {
    "DELIVERED": ("delivered_at_us", "delivered_received_at_us"),
    "READ": ("read_at_us", "read_received_at_us"),
}
_STORED_ONE = WriteCounts(stored=1)
_DUPLICATE_ONE = WriteCounts(duplicate=1)


class Store(Protocol):
    """What ingest needs from storage (a Protocol, so tests can swap backends)."""

    async def put_async(self, record: WebhookRecord) -> WriteCounts: ...

    async def put_agent_messages_async(self, records: Sequence[AgentMessage]) -> WriteCounts: ...


def user_event_id(agent_id: str, event_id: str, user_key: str) -> str:
    """Document id for RBM's documented duplicate key (agentId, eventId, user)."""
    return hashlib.sha256(f"{agent_id}\x1f{event_id}\x1f{user_key}".encode()).hexdigest()


def _owner(snap: Snapshot | None) -> str | None:
    """The agent a stored message belongs to (None: not stored, or stored by a
    version that wrote no owner on a receipt, in which case the next writer claims it)."""
    owner = snap.fields.get("agent_id") if snap is not None else None
    return owner if isinstance(owner, str) else None


def _earlier(new_us: int, snap: Snapshot | None, field: str) -> bool:
    """Whether ``new_us`` would replace the stored ``field`` (the earliest wins)."""
    stored = snap.fields.get(field) if snap is not None else None
    return not isinstance(stored, int) or new_us < stored


class FirestoreStore:
    """Writes records to Firestore; every storage failure becomes Unavailable."""

    def __init__(
        self,
        client: firestore.Client,
        *,
        retention_days: int,
        deadline_s: float,
        shard_count: int = Settings.shard_count,
    ) -> None:
        self._committer = Committer(client)
        self._shard_count = shard_count
        self._retention = timedelta(days=retention_days)
        self._expiry_second: tuple[int, datetime] = (0, datetime.now(UTC))
        self._deadline_s = deadline_s
        # Retries transient errors, but never past the deadline: the sender
        # gets a 503 in bounded time instead of a hung request.
        self._retry = gretry.AsyncRetry(
            initial=0.1,
            maximum=1.0,
            multiplier=2.0,
            timeout=deadline_s,
            predicate=gretry.if_transient_error,
        )

    # -- writes -------------------------------------------------------------
    async def put_async(self, record: WebhookRecord) -> WriteCounts:
        """Store one webhook record; a receipt for another agent's message is a conflict."""
        if isinstance(record, Receipt):
            return await self._attempts(self._put_receipt, record)
        if isinstance(record, UserMessage):
            doc = self.user_message_write(record)
        else:
            doc = self.user_event_write(record)
        try:
            await self._commit(doc)
        except _Changed:
            # A copy; a user message id is read only now: was it another agent's?
            if isinstance(record, UserMessage):
                return await self._user_message_copy(record)
            return _DUPLICATE_ONE
        return _STORED_ONE

    async def put_agent_messages_async(self, records: Sequence[AgentMessage]) -> WriteCounts:
        """All records in one atomic commit, or — when any names a message another
        agent owns — none, with those message ids in ``conflicts``."""
        unique: dict[str, AgentMessage] = {}
        conflicts: set[str] = set()
        for rec in records:
            kept = unique.get(rec.message_id)
            if kept is not None and kept.agent_id != rec.agent_id:
                conflicts.add(rec.message_id)  # one batch, one id, two agents
            elif kept is None or rec.sent_us < kept.sent_us:
                unique[rec.message_id] = rec
        if conflicts:
            return WriteCounts(conflicts=tuple(sorted(conflicts)))
        counts = await self._attempts(self._put_sent, unique)
        in_request_duplicates = 0 if counts.conflicts else len(records) - len(unique)
        return counts + WriteCounts(duplicate=in_request_duplicates)

    async def _put_sent(self, unique: dict[str, AgentMessage]) -> WriteCounts:
        snaps = await self._get(AGENT_MESSAGES, list(unique))
        conflicts = tuple(
            sorted(
                mid
                for mid, rec in unique.items()
                if _owner(snaps.get(mid)) not in (None, rec.agent_id)
            )
        )
        if conflicts:
            return WriteCounts(conflicts=conflicts)
        writes = [
            self.sent_write(rec, snaps.get(mid))
            for mid, rec in unique.items()
            if _earlier(rec.sent_us, snaps.get(mid), "sent_at_us")
        ]
        if writes:
            await self._commit(*writes)
        return WriteCounts(stored=len(writes), duplicate=len(unique) - len(writes))

    async def _put_receipt(self, rec: Receipt) -> WriteCounts:
        snap = (await self._get(AGENT_MESSAGES, (rec.message_id,))).get(rec.message_id)
        if _owner(snap) not in (None, rec.agent_id):
            return WriteCounts(conflicts=(rec.message_id,))
        if not _earlier(rec.event_us, snap, _RECEIPT_FIELDS[rec.receipt][0]):
            return _DUPLICATE_ONE
        await self._commit(self.receipt_write(rec, snap))
        return _STORED_ONE

    async def _user_message_copy(self, rec: UserMessage) -> WriteCounts:
        """A user message whose document exists: a duplicate, or a conflict when
        the id is another agent's."""
        snaps = await self._get(USER_MESSAGES, (rec.message_id,), ("agent_id",))
        if _owner(snaps.get(rec.message_id)) not in (None, rec.agent_id):
            return WriteCounts(conflicts=(rec.message_id,))
        return _DUPLICATE_ONE

    # -- documents ------------------------------------------------------------
    def sent_write(self, rec: AgentMessage, stored: Snapshot | None = None) -> DocWrite:
        """The sent record's fields; over ``stored`` (a read) only if it is unchanged."""
        return DocWrite(
            AGENT_MESSAGES,
            rec.message_id,
            fields={
                SHARD_FIELD: shard_of(rec.message_id, self._shard_count),
                "user_key": rec.user_key,
                "sent_at_us": rec.sent_us,
                "sent_received_at_us": rec.received_us,
            },
            transforms=_UPDATED_AT,
            create=stored is None,
            update_time=None if stored is None else stored.update_time,
            shared=(
                ("agent_id", rec.agent_id),
                ("content_type", rec.content_type),
                ("traffic_type", rec.traffic_type),
                ("expire_at", self._expiry()),
            ),
        )

    def receipt_write(self, rec: Receipt, stored: Snapshot | None = None) -> DocWrite:
        """The receipt's time; creates the document, owned by the receipt's agent,
        when the sent record has not arrived yet."""
        at, received_at = _RECEIPT_FIELDS[rec.receipt]
        return DocWrite(
            AGENT_MESSAGES,
            rec.message_id,
            fields={
                SHARD_FIELD: shard_of(rec.message_id, self._shard_count),
                at: rec.event_us,
                received_at: rec.received_us,
            },
            transforms=_UPDATED_AT,
            create=stored is None,
            update_time=None if stored is None else stored.update_time,
            shared=(("agent_id", rec.agent_id), ("expire_at", self._expiry())),
        )

    def user_message_write(self, rec: UserMessage) -> DocWrite:
        return DocWrite(
            USER_MESSAGES,
            rec.message_id,
            fields={
                SHARD_FIELD: shard_of(rec.message_id, self._shard_count),
                "user_key": rec.user_key,
                "event_at_us": rec.event_us,
                "received_at_us": rec.received_us,
            },
            transforms=_UPDATED_AT,
            create=True,
            shared=(
                ("agent_id", rec.agent_id),
                ("kind", rec.kind),
                ("postback_data", rec.postback_data),
                ("mime_type", rec.mime_type),
                ("expire_at", self._expiry()),
            ),
        )

    def user_event_write(self, rec: UserEvent) -> DocWrite:
        doc_id = user_event_id(rec.agent_id, rec.event_id, rec.user_key)
        return DocWrite(
            USER_EVENTS,
            doc_id,
            fields={
                SHARD_FIELD: shard_of(doc_id, self._shard_count),
                "event_id": rec.event_id,
                "user_key": rec.user_key,
                "message_id": rec.message_id,
                "event_at_us": rec.event_us,
                "received_at_us": rec.received_us,
            },
            transforms=_UPDATED_AT,
            create=True,
            shared=(
                ("agent_id", rec.agent_id),
                ("event_type", rec.event_type),
                ("expire_at", self._expiry()),
            ),
        )

    # -- plumbing -------------------------------------------------------------
    async def _attempts(
        self, attempt: Callable[[T], Awaitable[WriteCounts]], arg: T
    ) -> WriteCounts:
        """``attempt(arg)``: read, decide and write again while other requests win the race."""
        for _ in range(MAX_ATTEMPTS):
            try:
                return await attempt(arg)
            except _Changed:
                continue
        raise Unavailable(
            "the message kept changing while this request was being stored; retry later"
        )

    async def _get(
        self, collection: str, doc_ids: Sequence[str], fields: Sequence[str] = AGENT_MESSAGE_STATE
    ) -> dict[str, Snapshot]:
        """``fields`` of the existing documents among ``doc_ids``, by id."""
        try:
            return await self._committer.get_async(
                collection, doc_ids, fields, self._retry, self._deadline_s
            )
        except Exception as exc:
            raise _storage_error(exc) from exc

    async def _commit(self, *docs: DocWrite) -> None:
        """Commit ``docs`` atomically; ``_Changed`` when a precondition failed."""
        try:
            await self._committer.commit_async(docs, self._retry, self._deadline_s)
        except Exception as exc:
            raise _storage_error(exc) from exc

    def _expiry(self) -> datetime:
        # Whole seconds (what a TTL policy acts on), one datetime per second.
        second = int(time.time())
        if self._expiry_second[0] != second:
            at = datetime.fromtimestamp(second, UTC) + self._retention
            self._expiry_second = (second, at)
        return self._expiry_second[1]


def _storage_error(exc: Exception) -> _Changed:
    """``_Changed`` for a failed precondition (the flow decides again); any
    other storage failure raises Unavailable: the sender must retry, so a
    503, never a 200 and never a 500 it might give up on."""
    if isinstance(exc, (gexc.AlreadyExists, gexc.FailedPrecondition)):
        # A create found the document, or it changed since it was read.
        return _Changed()
    raise Unavailable(f"storage is unavailable ({type(exc).__name__}); retry later") from exc


class _Changed(Exception):
    """A precondition failed: the document exists, or changed since it was read."""


@clients.instance_cache
def event_store() -> FirestoreStore:
    """The instance's store, over the cached Firestore client."""
    settings = get_settings()
    return FirestoreStore(
        clients.firestore_client(),
        retention_days=settings.retention_days,
        deadline_s=settings.firestore_deadline_s,
        shard_count=settings.shard_count,
    )
