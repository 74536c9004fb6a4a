"""The refresh's saved state: one Firestore document per stream, and the old layout honoured.

Job tasks save a stream's cursor after every chunk, in parallel. Each stream's
state lives in its own document, so no document is written by two tasks (nor
more often than its one task commits chunks), and each dataset's streams stay
apart. Cursors an earlier version saved in the one state document's map still
say where each stream resumes, exactly: nothing before them is read again,
nothing after them is skipped.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore
from rbm_analytics.core.collections import AGENT_MESSAGES, USER_EVENTS, USER_MESSAGES
from rbm_analytics.core.config import get_settings
from rbm_analytics.core.shards import SHARD_FIELD
from rbm_analytics.core.tables import dataset_path
from rbm_analytics.refresh import routes, watermark
from rbm_analytics.refresh.job import task_streams

from tests.integration.refresh_support import Traffic, post_refresh, table_rows, utc
from tests.support import PROJECT

TASKS = 4
AT = utc(2026, 1, 5, 9)
# (updated_at, document id, the mirror row's id), in a stream's read order.
Doc = tuple[datetime, str, str]


def _state_document(db: firestore.Client) -> firestore.DocumentReference:
    return db.collection(watermark.STATE_COLLECTION).document(watermark.STATE_DOCUMENT)


def _stream_documents(db: firestore.Client) -> dict[str, dict[str, Any]]:
    streams = _state_document(db).collection(watermark.STREAMS_COLLECTION)
    return {snap.id: snap.to_dict() or {} for snap in streams.stream()}


def test_parallel_tasks_write_one_document_per_stream_and_datasets_stay_apart(
    firestore_host: str,
) -> None:
    db = firestore.Client(project=PROJECT)
    every = routes.all_streams(get_settings())
    # One dataset's path is a prefix of the other's.
    datasets = (f"{PROJECT}.analytics", f"{PROJECT}.analytics_test")
    base = datetime(2026, 3, 1, tzinfo=UTC)

    def task(index: int) -> set[str]:
        """What one job task does to the state: three chunks per stream, per dataset."""
        touched = set()
        for step in range(3):
            for dataset in datasets:
                for stream in task_streams(every, index, TASKS):
                    cursor = watermark.Cursor(base + timedelta(seconds=step), f"{dataset}-{step}")
                    watermark.save(db, dataset, stream.key, cursor, f"exec-{dataset}",
                                   caught_up=step == 2)  # fmt: skip
                    touched.add(watermark.stream_document(db, dataset, stream.key).id)
        return touched

    with ThreadPoolExecutor(TASKS) as pool:
        touched = list(pool.map(task, range(TASKS)))

    # No two tasks wrote the same document, and the shared state document not at all.
    for i in range(TASKS):
        for j in range(i + 1, TASKS):
            assert not touched[i] & touched[j], (i, j)
    assert not _state_document(db).get().exists
    # Read back: exactly one document per (dataset, stream), saying which it is.
    docs = _stream_documents(db)
    assert set(docs) == set().union(*touched)
    assert sorted((d["dataset"], d["stream"]) for d in docs.values()) == sorted(
        (dataset, s.key) for dataset in datasets for s in every
    )
    for doc_id in docs:
        assert "/" not in doc_id and len(doc_id.encode()) <= 1500
    for dataset in datasets:
        saved = watermark.load(db, dataset)
        assert set(saved) == {s.key for s in every}
        final = watermark.Cursor(base + timedelta(seconds=2), f"{dataset}-2")
        assert {state.cursor for state in saved.values()} == {final}
        assert routes.caught_up(db, dataset, every, f"exec-{dataset}")
        other = next(d for d in datasets if d != dataset)
        assert not routes.caught_up(db, dataset, every, f"exec-{other}")
    assert watermark.load(db, f"{PROJECT}.analytics_other") == {}


def _streams_in_firestore(db: firestore.Client) -> dict[str, list[Doc]]:
    """Every document as its stream reads it: "collection/shard" → docs in read order."""
    out: dict[str, list[Doc]] = defaultdict(list)
    for collection in (AGENT_MESSAGES, USER_MESSAGES, USER_EVENTS):
        for snap in db.collection(collection).stream():
            doc = snap.to_dict() or {}
            row_id = doc["event_id"] if collection == USER_EVENTS else snap.id
            out[f"{collection}/{doc[SHARD_FIELD]}"].append((doc["updated_at"], snap.id, row_id))
    return {key: sorted(docs) for key, docs in out.items()}


def _entry(doc: Doc) -> dict[str, Any]:
    """A stream's entry as the version with one state document saved it."""
    return {"updated_at": doc[0], "doc_id": doc[1], "run_id": "old", "caught_up_by": "old"}


def test_cursors_saved_in_the_old_layout_are_resumed_exactly(
    ingest_client: Any, bq_dataset: str
) -> None:
    t = Traffic(ingest_client)
    # One request: the messages share one commit time, ordered within it by id.
    t.agent_messages(
        [(f"m{i:03d}", "agent-a", f"+1555300{i:04d}", AT + timedelta(minutes=i)) for i in range(80)]
    )
    # One request each: increasing commit times.
    for i in range(24):
        phone, at = f"+1555300{i:04d}", AT + timedelta(minutes=i)
        t.user_message(f"u{i:03d}", "agent-a", phone, at, "text")
        t.typing(f"e{i:03d}", "agent-a", phone, at)
    db = firestore.Client(project=PROJECT)
    streams = _streams_in_firestore(db)
    dataset = dataset_path(get_settings().project, bq_dataset)

    legacy: dict[str, Any] = {}
    own: dict[str, Doc] = {}
    expected: set[tuple[str, str]] = set()
    agent_keys = sorted(k for k in streams if k.startswith(f"{AGENT_MESSAGES}/"))
    agent_keys = [k for k in agent_keys if len(streams[k]) >= 3]
    assert len(agent_keys) >= 4, "the messages should spread over the shards"
    ahead, behind = agent_keys[0], agent_keys[1]
    for key in agent_keys[2:]:
        # Cursors in the old map: each stream reads after its own.
        docs = streams[key]
        legacy[key] = _entry(docs[len(docs) // 2])
        expected |= {(AGENT_MESSAGES, d[2]) for d in docs[len(docs) // 2 + 1 :]}
    # A stream's own document wins over its old map entry, ahead of it or behind it.
    legacy[ahead], own[ahead] = _entry(streams[ahead][0]), streams[ahead][-2]
    expected.add((AGENT_MESSAGES, streams[ahead][-1][2]))
    legacy[behind], own[behind] = _entry(streams[behind][-1]), streams[behind][0]
    expected |= {(AGENT_MESSAGES, d[2]) for d in streams[behind][1:]}
    # Agent message shards with no cursor start at the old single watermark,
    # which is after them all: they read nothing. So do user_messages' shards,
    # from the middle of their messages on (updated_at >= the watermark).
    messages = sorted(d for k, docs in streams.items() if k.startswith(USER_MESSAGES) for d in docs)
    mark = messages[len(messages) // 2][0]
    expected |= {(USER_MESSAGES, d[2]) for d in messages if d[0] >= mark}
    # user_events' shards have no cursor of their own: they resume at the
    # collection's stream from before shards.
    events = sorted(d for k, docs in streams.items() if k.startswith(USER_EVENTS) for d in docs)
    legacy[USER_EVENTS] = _entry(events[len(events) // 3])
    expected |= {(USER_EVENTS, d[2]) for d in events[len(events) // 3 + 1 :]}
    _state_document(db).set(
        {"watermarks": {dataset: {"watermark": mark, "streams": legacy}}}, merge=True
    )
    for key, doc in own.items():
        watermark.save(db, dataset, key, watermark.Cursor(doc[0], doc[1]), "new", caught_up=False)
    assert 0 < len(expected) < sum(len(docs) for docs in streams.values())

    summary = post_refresh({"start": "2026-01-05", "end": "2026-01-05"})
    # None read twice, none skipped: exactly the documents after each cursor.
    assert summary["documents_read"] == len(expected)
    mirrored = {(AGENT_MESSAGES, r["message_id"]) for r in table_rows(bq_dataset, AGENT_MESSAGES)}
    mirrored |= {(USER_MESSAGES, r["message_id"]) for r in table_rows(bq_dataset, USER_MESSAGES)}
    mirrored |= {(USER_EVENTS, r["event_id"]) for r in table_rows(bq_dataset, USER_EVENTS)}
    assert mirrored == expected
    # Every stream now has its own document; the old map is left as it was.
    every = {s.key for s in routes.all_streams(get_settings())}
    assert {d["stream"] for d in _stream_documents(db).values()} == every
    state = _state_document(db).get().to_dict() or {}
    assert state["watermarks"][dataset]["streams"] == legacy


def test_tasks_finishing_together_claim_the_daily_step_once(firestore_host: str) -> None:
    # Eight tasks claim the same execution's daily step at the same moment, on
    # one document: exactly one holds it, none fails, and each asking again
    # (a retried task) gets the same answer.
    db = firestore.Client(project=PROJECT)
    dataset, execution = f"{PROJECT}.claims", "exec-1"
    start = threading.Barrier(8)

    def claim(index: int) -> bool:
        start.wait()
        return watermark.claim_daily(db, dataset, execution, f"task-{index}")

    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(claim, range(8)))
    assert first.count(True) == 1, first
    again = [watermark.claim_daily(db, dataset, execution, f"task-{i}") for i in range(8)]
    assert again == first
    # The next execution is claimed anew.
    assert watermark.claim_daily(db, dataset, "exec-2", "task-5")
