"""The refresh job fanned out over N tasks writes the same tables as one refresh.

The same Firestore data is refreshed into four datasets (each dataset keeps its
own cursors, so each reads everything): once by the ``refresh`` command (the
function's code, one process) and once each by ``rbm-analytics refresh --tasks N``
for N = 1, 2 and 4 (N local processes of ``python -m rbm_analytics.refresh.job``).
The chunk size is lowered so the fuller streams take several chunks. Every mirror
and daily table must hold the same rows, column for column, except the
``refreshed_at`` write time.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from datetime import timedelta
from typing import Any

from google.cloud import firestore
from rbm_analytics.core.config import get_settings
from rbm_analytics.core.tables import dataset_path
from rbm_analytics.refresh import watermark
from rbm_analytics.refresh.routes import all_streams

from tests.integration.refresh_support import (
    REFRESH_TABLES,
    Traffic,
    latest_runs,
    table_snapshot,
    utc,
)
from tests.support import PROJECT, REPO_ROOT

START, END = "2026-03-01", "2026-03-05"
AGENTS = ("acme-agent", "beta-agent")
KINDS = ("text", "file", "location", "suggestion_reply", "suggestion_action")
OVERLAP_S = 0.5
CHUNK = 20


def _traffic(client: Any, rng: random.Random) -> None:
    t = Traffic(client)
    sends = []
    for i in range(120):
        agent, phone = AGENTS[i % 2], f"+1555200{i % 30:04d}"
        sends.append((f"m{i}", agent, phone, utc(2026, 3, 1) + timedelta(
            seconds=rng.randrange(5 * 86400))))  # fmt: skip
    t.agent_messages(sends)
    for i, (mid, agent, phone, at) in enumerate(sends):
        if rng.random() < 0.9:
            t.receipt("DELIVERED", mid, agent, phone, at + timedelta(seconds=rng.randrange(600)))
        if rng.random() < 0.6:
            read = at + timedelta(seconds=rng.randrange(3 * 86400))
            t.receipt("READ", mid, agent, phone, read)
            if rng.random() < 0.5:
                reply = read + timedelta(seconds=rng.randrange(1, 3600))
                t.user_message(f"u-{mid}", agent, phone, reply, rng.choice(KINDS), f"pb{i % 3}")
        if rng.random() < 0.3:
            t.typing(f"typing-{mid}", agent, phone, at + timedelta(seconds=30))


def _refresh(dataset: str, *extra: str) -> dict[str, Any]:
    env = {**os.environ, "BQ_DATASET": dataset, "REFRESH_OVERLAP_SECONDS": str(OVERLAP_S),
           "REFRESH_CHUNK_DOCUMENTS": str(CHUNK)}  # fmt: skip
    proc = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "rbm-analytics"), "refresh",
         "--start", START, "--end", END, *extra],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary: dict[str, Any] = json.loads(proc.stdout[proc.stdout.index("{\n") :])
    return summary


def test_the_same_data_refreshed_by_1_2_and_4_tasks_gives_identical_tables(
    ingest_client: Any, bq_dataset: str, bigquery_emulator: Any
) -> None:
    seed = int(os.environ.get("REFRESH_TASKS_SEED", "20260314"))
    print(f"seed {seed}")
    _traffic(ingest_client, random.Random(seed))
    # Older than the overlap: each stream's saved cursor is exact.
    time.sleep(OVERLAP_S + 0.5)

    streams = [s.key for s in all_streams(get_settings())]
    single = _refresh(bq_dataset)
    assert single["status"] == "succeeded"
    backlog = single["documents_read"]
    assert single["chunks"] > 3, "collections should take several chunks"
    expected = table_snapshot(bq_dataset)
    assert expected["daily_metrics"] and expected["user_messages"], "nothing was refreshed"

    for count in (1, 2, 4):
        dataset = f"{bq_dataset}_n{count}"
        summary = _refresh(dataset, "--tasks", str(count))
        assert summary["tasks"] == count and summary["failed_tasks"] == 0
        tasks = summary["per_task"]
        assert sorted(t["task_index"] for t in tasks) == list(range(count))
        # Each stream read by exactly one task: the tasks together read the backlog once.
        assert sorted(s for t in tasks for s in t["streams"]) == sorted(streams)
        assert summary["documents_read"] == backlog
        # Exactly one task (the one that found every stream caught up) ran the daily step.
        assert len(summary["daily_by_task"]) == 1, summary
        got = table_snapshot(dataset)
        for table in REFRESH_TABLES:
            assert got[table] == expected[table], f"{table} differs with {count} task(s)"
        statuses = {r["status"] for r in latest_runs(dataset)}
        assert "succeeded" in statuses and statuses <= {"succeeded", "mirrored"}, statuses

        # A second execution with nothing new: still the same tables.
        if count == 4:
            again = _refresh(dataset, "--tasks", str(count))
            assert again["failed_tasks"] == 0 and len(again["daily_by_task"]) == 1
            assert table_snapshot(dataset) == expected

    # The tasks saved their cursors in one document per stream and dataset,
    # never in the shared state document (which only the daily claim writes).
    db = firestore.Client(project=PROJECT)
    state = db.collection(watermark.STATE_COLLECTION).document(watermark.STATE_DOCUMENT)
    saved = [d.to_dict() or {} for d in state.collection(watermark.STREAMS_COLLECTION).stream()]
    datasets = [bq_dataset, *(f"{bq_dataset}_n{count}" for count in (1, 2, 4))]
    project = get_settings().project
    assert sorted((d["dataset"], d["stream"]) for d in saved) == sorted(
        (dataset_path(project, dataset), key) for dataset in datasets for key in streams
    )
    marks = (state.get().to_dict() or {}).get("watermarks", {})
    assert marks and all("streams" not in entry for entry in marks.values())
