"""A backlog that does not fit the time budget, and backfills past the mirror's retention.

Backlog: with a small chunk size and a time budget that allows one chunk, every
run mirrors one chunk, saves its progress, answers 503 with ``"status":
"incomplete"`` (so Cloud Scheduler retries) and leaves the daily tables alone;
repeated until it answers 200, the tables equal a run that had all the time it
needed.

Expired mirror: a backfill whose look-back reaches partitions older than
MIRROR_RETENTION_DAYS gets 400, and the daily rows stay exactly as they were.
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import timedelta
from typing import Any

import pytest
from rbm_analytics.core import clients
from rbm_analytics.core.timeutil import today_utc

from tests.integration.refresh_support import (
    Traffic,
    latest_runs,
    post_refresh,
    refresh_client,
    table_rows,
    table_snapshot,
    utc,
)
from tests.reliability.test_refresh_killed import _traffic

START, END = "2026-03-01", "2026-03-05"
DAILY = ("daily_metrics", "daily_postbacks", "response_samples")


def _use_dataset(monkeypatch: pytest.MonkeyPatch, dataset: str) -> None:
    monkeypatch.setenv("BQ_DATASET", dataset)
    clients.reset()


def test_backlog_over_the_time_budget_catches_up_over_retries(
    ingest_client: Any, bq_dataset: str, monkeypatch: pytest.MonkeyPatch, soak: bool
) -> None:
    seed = int(os.environ.get("RELIABILITY_SEED", "20260302"))
    print(f"seed {seed}")
    _traffic(ingest_client, random.Random(seed))
    monkeypatch.setenv("REFRESH_OVERLAP_SECONDS", "0.5")
    time.sleep(1.0)  # the backlog is older than the overlap
    body = {"start": START, "end": END}

    clean = bq_dataset
    post_refresh(body)
    expected = table_snapshot(clean)

    _use_dataset(monkeypatch, f"{clean}_budget")
    chunk = 20 if soak else 60
    monkeypatch.setenv("REFRESH_CHUNK_DOCUMENTS", str(chunk))
    # One chunk per run: the budget is checked after each chunk.
    monkeypatch.setenv("REFRESH_TIME_BUDGET_SECONDS", "0.001")
    clients.reset()
    answers = []
    for _ in range(60):
        resp = refresh_client().post("/", data=json.dumps(body).encode())
        answer = resp.get_json()
        answers.append(answer)
        if answer["status"] == "succeeded":
            assert resp.status_code == 200
            break
        # Not 200: Cloud Scheduler retries.
        assert (resp.status_code, answer["status"]) == (503, "incomplete")
        assert "catching up" in answer["error"]
        # One chunk that read documents (empty streams found caught up do not count).
        assert answer["documents_read"] <= chunk and answer["daily_rows"] is None
        # The backlog is older than the overlap: the alert's lag shows it.
        assert answer["watermark_lag_s"] > 0.5
        # Nothing computed from a partly mirrored window.
        assert all(table_rows(f"{clean}_budget", t) == [] for t in DAILY)
    print(f"{len(answers)} runs, documents read: {[a['documents_read'] for a in answers]}")
    assert len(answers) >= 3, "the backlog fit in one run: nothing was tested"
    assert answers[-1]["status"] == "succeeded"
    # Caught up: the lag is the overlap plus the run's own time.
    assert answers[-1]["watermark_lag_s"] < answers[0]["watermark_lag_s"]
    assert table_snapshot(f"{clean}_budget") == expected
    # Every document was read once: no finished chunk was read again.
    assert sum(a["documents_read"] for a in answers) == sum(
        len(table_rows(clean, t)) for t in ("agent_messages", "user_messages", "user_events")
    )
    statuses = [r["status"] for r in latest_runs(f"{clean}_budget")]
    assert statuses == ["incomplete"] * (len(answers) - 1) + ["succeeded"]


def test_backfill_past_mirror_retention_is_400_and_daily_rows_are_untouched(
    ingest_client: Any, bq_dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = today_utc()
    first = today - timedelta(days=40)
    t = Traffic(ingest_client)
    phone = "+15550007777"
    for i in range(6):
        day = first + timedelta(days=i)
        at = utc(day.year, day.month, day.day, 12)
        t.agent_messages([(f"r{i}", "agent-a", phone, at)])
        t.receipt("READ", f"r{i}", "agent-a", phone, at + timedelta(hours=1))
    body = {"start": first.isoformat(), "end": (first + timedelta(days=5)).isoformat()}
    post_refresh(body)  # MIRROR_RETENTION_DAYS=400: its look-back is kept
    before = {table: table_rows(bq_dataset, table) for table in DAILY}
    runs_before = table_rows(bq_dataset, "refresh_runs")
    assert len(before["daily_metrics"]) == 6

    # Partitions now live 60 days: the look-back of `first` (70 days ago) has expired.
    monkeypatch.setenv("MIRROR_RETENTION_DAYS", "60")
    clients.reset()
    answer = post_refresh(body, expect=400)
    assert "MIRROR_RETENTION_DAYS=60" in answer["error"]
    assert {table: table_rows(bq_dataset, table) for table in DAILY} == before
    assert table_rows(bq_dataset, "refresh_runs") == runs_before  # rejected before it ran

    # The latest dates whose look-back is still kept are accepted.
    ok = today - timedelta(days=29)
    assert post_refresh({"start": ok.isoformat(), "end": ok.isoformat()})["status"] == "succeeded"
