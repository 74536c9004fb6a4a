"""The refresh's durable progress: Firestore document ``refresh_state/mirror``.

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

State is kept per BigQuery dataset (a map in the one state document): a
refresh into another dataset, such as a by-hand run against a test dataset,
must neither skip documents nor make the production dataset skip them. A
dataset's ``watermark`` entry from before cursors is honoured as the starting
point of streams that have no cursor yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore

STATE_COLLECTION = "refresh_state"
STATE_DOCUMENT = "mirror"
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


def _ref(client: firestore.Client) -> firestore.DocumentReference:
    return client.collection(STATE_COLLECTION).document(STATE_DOCUMENT)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _dataset_entry(client: firestore.Client, dataset: str) -> dict[str, Any]:
    snap = _ref(client).get()
    marks = (snap.to_dict() or {}) if snap.exists else {}
    entry = (marks.get("watermarks") or {}).get(dataset) or {}
    return entry if isinstance(entry, dict) else {}


def _legacy(entry: dict[str, Any]) -> Cursor:
    value = entry.get("watermark")
    return Cursor(_utc(value)) if isinstance(value, datetime) else Cursor(BEGINNING)


def load(client: firestore.Client, dataset: str) -> dict[str, StreamState]:
    """Every stream's saved state for ``dataset`` (streams never saved are absent)."""
    entry = _dataset_entry(client, dataset)
    out = {}
    for key, raw in (entry.get("streams") or {}).items():
        if not isinstance(raw, dict) or not isinstance(raw.get("updated_at"), datetime):
            continue
        doc_id = raw.get("doc_id")
        out[key] = StreamState(
            Cursor(_utc(raw["updated_at"]), doc_id if isinstance(doc_id, str) else None),
            raw.get("caught_up_by") if isinstance(raw.get("caught_up_by"), str) else None,
        )
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
    """Set one stream's cursor, leaving other streams and datasets untouched.

    ``caught_up``: the chunk just committed was the last one (nothing more
    after ``cursor`` when it was read); the stream then records ``run_id``.
    """
    entry: dict[str, Any] = {
        "updated_at": cursor.updated_at,
        "doc_id": cursor.doc_id,
        "run_id": run_id,
        "saved_at": firestore.SERVER_TIMESTAMP,
    }
    if caught_up:
        entry["caught_up_by"] = run_id
    # A nested map with merge=True merges field by field: only this stream changes.
    _ref(client).set({"watermarks": {dataset: {"streams": {stream: entry}}}}, merge=True)


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
    """
    ref = _ref(client)

    @firestore.transactional
    def claim(transaction: firestore.Transaction) -> bool:
        snap = ref.get(transaction=transaction)
        marks = (snap.to_dict() or {}) if snap.exists else {}
        entry = (marks.get("watermarks") or {}).get(dataset) or {}
        held = entry.get("daily_claim") if isinstance(entry, dict) else None
        if isinstance(held, dict) and held.get("run_id") == run_id:
            return bool(held.get("by") == claimant)
        value = {"run_id": run_id, "by": claimant}
        transaction.set(ref, {"watermarks": {dataset: {"daily_claim": value}}}, merge=True)
        return True

    return bool(claim(client.transaction()))


def daily_by(client: firestore.Client, dataset: str) -> str | None:
    """The run (or job execution) that last recomputed the daily tables."""
    value = _dataset_entry(client, dataset).get("daily_by")
    return value if isinstance(value, str) else None
