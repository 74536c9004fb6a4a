"""The refresh's durable progress, in Firestore under ``refresh_state/mirror``.

The change feed is read as *streams* (one per collection, or per collection
and shard), each in ``(updated_at, document id)`` order, in chunks. A stream's
cursor is the position after which it reads next::

    cursor (u, id)    read documents after (u, id): updated_at > u, or = u with a larger id
    cursor (u, None)  read documents with updated_at >= u

A chunk is loaded and MERGEd into BigQuery before its cursor is saved, so a run
that dies at any point repeats at most the one chunk in flight (the MERGE is
idempotent), never finished work.

The overlap rule: a document committed while a run reads may become visible
a little after its commit time, and this instance's clock may differ from
Firestore's; both are bounded by ``REFRESH_OVERLAP_SECONDS``. So the position
saved for later runs is never past ``(run start - overlap, None)``: a backlog
far behind the run's start saves exact cursors (nothing is read twice), while a
run that caught up leaves the last ``overlap`` seconds before its start to be
read again by the next run, as a single watermark did before cursors.

Each stream also records ``caught_up_by``: the id of the run (or Cloud Run job
execution) whose read found nothing more after the cursor. The daily tables are
recomputed only when every stream was caught up by the current run, so they are
never computed from a partly mirrored window.

State is kept per BigQuery dataset: a refresh into another dataset, such as a
by-hand run against a test dataset, must neither skip documents nor make the
production dataset skip them. The layout::

    refresh_state/mirror                      the state document, one map per dataset:
      watermarks.<dataset>.daily_by/daily_at  the execution that last computed the daily tables
      watermarks.<dataset>.daily_claim        who holds that step (a transaction)
      watermarks.<dataset>.watermark          the single position from before cursors
      watermarks.<dataset>.streams.<stream>   cursors saved before each stream had its own document
    refresh_state/mirror/streams/<id>         one document per (dataset, stream): fields
                                              dataset, stream, updated_at, doc_id, run_id,
                                              saved_at, caught_up_by (when caught up)

Why one document per stream: each job task saves a cursor for every stream
in a chunk it commits, up to about once a second per task, and the tasks run
in parallel (4 by default, 10 to 16 for large volumes), so cursors in one
shared document would take 10 to 20 or more writes a second on it.
Firestore's documentation lists a document updated too often as a cause of
contention, with higher latency and aborted writes (``ABORTED`` for a
document receiving too many updates per second), and its remedy as lowering
the write rate to individual documents; the sustained rate it gives for one
document is about one write a second. A stream's document is written only by
the one task that reads the stream, once per chunk it commits (each a
BigQuery load and MERGE), however many tasks run. The daily claim stays in
the state document: it is written a couple of times a morning.

A stream's document id is the SHA-256 of ``(dataset, stream)`` (stream keys
contain a ``/``, which document ids may not): fixed length, the same for the
same stream, spread over the key range; the dataset and stream are kept as
fields. ``load`` reads a dataset's streams with one query, ``dataset == d``,
served by Firestore's automatic single-field index (no composite index).

Upgrading loses nothing: cursors saved in the state document's map by
earlier versions are still read, a stream's own document winning over its
map entry (which is left in place, shadowed, never written again), and a
dataset's ``watermark`` from before cursors is honoured as the starting
point of streams that have no cursor yet.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

STATE_COLLECTION = "refresh_state"
STATE_DOCUMENT = "mirror"
# The state document's subcollection of per-stream documents, and their key fields.
STREAMS_COLLECTION = "streams"
DATASET_FIELD = "dataset"
STREAM_FIELD = "stream"
# Before the first run, read everything.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Cursor:
    """A position in a stream's ``(updated_at, id)`` order (see the module doc)."""

    updated_at: datetime
    doc_id: str | None = None

    def before(self, other: Cursor) -> bool:
        """True when reading from ``self`` covers at least what ``other`` covers."""
        if self.updated_at != other.updated_at:
            return self.updated_at < other.updated_at
        if other.doc_id is None:
            return self.doc_id is None
        return self.doc_id is None or self.doc_id <= other.doc_id

    def capped(self, limit: Cursor) -> Cursor:
        """The earlier of the two positions (``limit``: run start minus the overlap)."""
        return self if self.before(limit) else limit


@dataclass(frozen=True)
class StreamState:
    cursor: Cursor
    caught_up_by: str | None = None


# Attempts of the daily step's claim in one transaction (the client's
# default is 5): every task of a job may try it in the same second.
CLAIM_ATTEMPTS = 10
# Rounds of those attempts, a random pause apart, before the task fails.
CLAIM_ROUNDS = 5


def _ref(client: firestore.Client) -> firestore.DocumentReference:
    return client.collection(STATE_COLLECTION).document(STATE_DOCUMENT)


def _streams(client: firestore.Client) -> firestore.CollectionReference:
    streams: firestore.CollectionReference = _ref(client).collection(STREAMS_COLLECTION)
    return streams


def stream_document_id(dataset: str, stream: str) -> str:
    """The id of ``stream``'s document for ``dataset`` (see the module doc).

    JSON keeps the pair unambiguous (no dataset and stream run together);
    SHA-256 gives 64 hex characters, never a ``/``, a ``.`` or ``__…__``.
    """
    pair = json.dumps([dataset, stream], separators=(",", ":"))
    return hashlib.sha256(pair.encode()).hexdigest()


def stream_document(
    client: firestore.Client, dataset: str, stream: str
) -> firestore.DocumentReference:
    """The document holding ``stream``'s state for ``dataset``."""
    return _streams(client).document(stream_document_id(dataset, stream))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _dataset_entry(client: firestore.Client, dataset: str) -> dict[str, Any]:
    return _entry_of(_ref(client).get(), dataset)


def _entry_of(snap: firestore.DocumentSnapshot[Any], dataset: str) -> dict[str, Any]:
    """``dataset``'s entry in a snapshot of the state document ({} when none)."""
    marks = (snap.to_dict() or {}) if snap.exists else {}
    entry = (marks.get("watermarks") or {}).get(dataset) or {}
    return entry if isinstance(entry, dict) else {}


def _legacy(entry: dict[str, Any]) -> Cursor:
    value = entry.get("watermark")
    return Cursor(_utc(value)) if isinstance(value, datetime) else Cursor(BEGINNING)


def _stream_state(raw: object) -> StreamState | None:
    """A saved stream state (a stream document, or a map entry of earlier versions)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("updated_at"), datetime):
        return None
    doc_id, by = raw.get("doc_id"), raw.get("caught_up_by")
    return StreamState(
        Cursor(_utc(raw["updated_at"]), doc_id if isinstance(doc_id, str) else None),
        by if isinstance(by, str) else None,
    )


def load(client: firestore.Client, dataset: str) -> dict[str, StreamState]:
    """Every stream's saved state for ``dataset`` (streams never saved are absent).

    One read of the state document (cursors saved there by earlier versions)
    and one query of the dataset's stream documents, which win.
    """
    out = {}
    legacy = _dataset_entry(client, dataset).get("streams")
    for key, raw in (legacy if isinstance(legacy, dict) else {}).items():
        state = _stream_state(raw)
        if state is not None:
            out[key] = state
    query = _streams(client).where(filter=FieldFilter(DATASET_FIELD, "==", dataset))
    for snap in query.stream():
        raw = snap.to_dict() or {}
        key, state = raw.get(STREAM_FIELD), _stream_state(raw)
        if isinstance(key, str) and state is not None:
            out[key] = state
    return out


def start_cursor(client: firestore.Client, dataset: str) -> Cursor:
    """Where a stream with no saved cursor starts: the old single watermark, or BEGINNING."""
    return _legacy(_dataset_entry(client, dataset))


def resume(saved: dict[str, StreamState], key: str, collection: str, start: Cursor) -> Cursor:
    """Where stream ``key`` of ``collection`` reads next.

    Its own cursor; else, for a shard's stream new since the upgrade to
    shards, the collection's unsharded stream's cursor (everything before it
    was mirrored, whatever its shard); else ``start`` (``start_cursor``).
    """
    for name in (key, collection):
        if name in saved:
            return saved[name].cursor
    return start


def save(
    client: firestore.Client,
    dataset: str,
    stream: str,
    cursor: Cursor,
    run_id: str,
    *,
    caught_up: bool,
) -> None:
    """Write one stream's state to its own document; no other document is written.

    ``caught_up``: the chunk just committed was the last one (nothing more
    after ``cursor`` when it was read); the stream then records ``run_id``.
    The document is replaced whole, so a stream that reads on after being
    caught up no longer counts as caught up until it is again.
    """
    entry: dict[str, Any] = {
        DATASET_FIELD: dataset,
        STREAM_FIELD: stream,
        "updated_at": cursor.updated_at,
        "doc_id": cursor.doc_id,
        "run_id": run_id,
        "saved_at": firestore.SERVER_TIMESTAMP,
    }
    if caught_up:
        entry["caught_up_by"] = run_id
    stream_document(client, dataset, stream).set(entry)


def mark_daily(client: firestore.Client, dataset: str, run_id: str) -> None:
    """Record that ``run_id`` recomputed the daily tables (a job's tasks check it)."""
    entry = {"daily_by": run_id, "daily_at": firestore.SERVER_TIMESTAMP}
    _ref(client).set({"watermarks": {dataset: entry}}, merge=True)


def claim_daily(client: firestore.Client, dataset: str, run_id: str, claimant: str) -> bool:
    """Atomically claim ``run_id``'s daily step for ``claimant``; True when it holds the claim.

    Several job tasks may find every stream caught up at once. BigQuery aborts
    one of two concurrent transactions on the same tables, so exactly one task
    recomputes the daily tables: the first to claim them in a Firestore
    transaction. The same claimant (a retried task) keeps its claim.

    Tasks that finish together contend on one document. A claim already held
    for ``run_id`` is seen by a plain read first, with no transaction. When a
    transaction loses every attempt (``ValueError``, from the client), a
    second read shows who holds the claim now; if nobody does, the task
    pauses at random and tries again, ``CLAIM_ROUNDS`` times in all.
    """
    ref = _ref(client)
    held = _claim_holder(_dataset_entry(client, dataset), run_id)
    if held is not None:
        return held == claimant

    @firestore.transactional
    def claim(transaction: firestore.Transaction) -> bool:
        entry = _entry_of(ref.get(transaction=transaction), dataset)
        held = _claim_holder(entry, run_id)
        if held is not None:
            return held == claimant
        value = {"run_id": run_id, "by": claimant}
        transaction.set(ref, {"watermarks": {dataset: {"daily_claim": value}}}, merge=True)
        return True

    for round_ in range(CLAIM_ROUNDS):
        try:
            return bool(claim(client.transaction(max_attempts=CLAIM_ATTEMPTS)))
        except ValueError:
            held = _claim_holder(_dataset_entry(client, dataset), run_id)
            if held is not None:
                return held == claimant
            if round_ == CLAIM_ROUNDS - 1:
                raise
            # Nobody won: the contenders kept aborting each other (the
            # emulator does not keep a retried transaction's place in line).
            # A random pause lets one of them through.
            time.sleep(random.uniform(0.05, 0.5) * (round_ + 1))  # noqa: S311 (a pause, not a secret)
    raise AssertionError("unreachable")


def _claim_holder(entry: dict[str, Any], run_id: str) -> str | None:
    """Who holds ``run_id``'s daily step in a dataset's entry, if anyone does."""
    held = entry.get("daily_claim")
    if isinstance(held, dict) and held.get("run_id") == run_id:
        by = held.get("by")
        return by if isinstance(by, str) else ""
    return None


def daily_by(client: firestore.Client, dataset: str) -> str | None:
    """The run (or job execution) that last recomputed the daily tables."""
    value = _dataset_entry(client, dataset).get("daily_by")
    return value if isinstance(value, str) else None
