"""The refresh's durable watermark: Firestore document ``refresh_state/mirror``.

    run N starts at S ──read changed since W(N-1)──▶ BigQuery commits ──▶ W(N) = S - overlap

The watermark moves only after BigQuery committed, so a run that dies at any
point leaves the old watermark and the next run re-reads the same documents
(the mirror MERGE is idempotent). Documents committed while a run reads have
``updated_at`` ≥ S - overlap and are read again by the next run; the overlap
also covers clock skew between this instance and Firestore's commit times.
Writing an older watermark (a slow concurrent run) only re-reads more, never less.

Watermarks are kept per BigQuery dataset (a map in the one state document):
a refresh into another dataset, such as a by-hand run against a test dataset,
must neither skip documents nor make the production dataset skip them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.cloud import firestore

STATE_COLLECTION = "refresh_state"
STATE_DOCUMENT = "mirror"
# Before the first run, read everything.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


def _ref(client: firestore.Client) -> firestore.DocumentReference:
    return client.collection(STATE_COLLECTION).document(STATE_DOCUMENT)


def load(client: firestore.Client, dataset: str) -> datetime:
    """``dataset``'s watermark, or BEGINNING before its first successful run."""
    snap = _ref(client).get()
    marks = (snap.to_dict() or {}) if snap.exists else {}
    entry = (marks.get("watermarks") or {}).get(dataset) or {}
    value = entry.get("watermark")
    if not isinstance(value, datetime):
        return BEGINNING
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def save(client: firestore.Client, dataset: str, watermark: datetime, run_id: str) -> None:
    """Set ``dataset``'s watermark, leaving other datasets' untouched."""
    entry = {"watermark": watermark, "run_id": run_id, "saved_at": firestore.SERVER_TIMESTAMP}
    _ref(client).set({"watermarks": {dataset: entry}}, merge=True)
