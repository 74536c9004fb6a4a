"""Refresh runs over time: idempotency, crash and retry, the watermark, run_date
versus explicit backfills, refresh_runs rows, and the command line."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from rbm_analytics.core import clients
from rbm_analytics.core.config import get_settings
from rbm_analytics.core.shards import SHARD_FIELD, shard_of
from rbm_analytics.refresh.warehouse import Warehouse
from rbm_analytics_dev import cli
from rbm_analytics_dev.reference import expected

from tests.integration import scenario
from tests.integration.refresh_support import (
    Traffic,
    assert_tables_match,
    latest_runs,
    post_refresh,
    table_rows,
    table_snapshot,
    us,
    utc,
)
from tests.support import PROJECT

FIRST_DAY = date(2026, 2, 1)
DAILY = ("daily_metrics", "daily_postbacks", "response_samples")
MIRROR = ("agent_messages", "user_messages", "user_events")


def _small(seed: int) -> scenario.Scenario:
    return scenario.build(seed, FIRST_DAY, days=12, phones_per_agent=1)


def _dates(sc: scenario.Scenario) -> set[date]:
    return {sc.first_day + timedelta(days=i) for i in range(sc.days)}


def _backfill(sc: scenario.Scenario, expect: int = 200) -> Any:
    return post_refresh(
        {"start": sc.first_day.isoformat(), "end": sc.last_day.isoformat()}, expect=expect
    )


def test_same_refresh_twice_gives_identical_tables(ingest_client: Any, bq_dataset: str) -> None:
    sc = _small(11)
    scenario.push(sc, Traffic(ingest_client))
    first = _backfill(sc)
    tables = table_snapshot(bq_dataset, DAILY + MIRROR)
    second = _backfill(sc)
    assert second["dates"] == first["dates"]
    assert table_snapshot(bq_dataset, DAILY + MIRROR) == tables
    assert tables["daily_metrics"], "the scenario produced no rows"
    assert_tables_match(bq_dataset, expected(sc.agent_msgs, sc.user_msgs, sc.typing, _dates(sc)))


def test_crash_between_mirror_and_metrics_then_rerun(
    ingest_client: Any, bq_dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFRESH_OVERLAP_SECONDS", "0.5")
    traffic = Traffic(ingest_client)
    sc = _small(12)
    scenario.push(sc, traffic)
    time.sleep(0.6)  # past the overlap margin: the next run reads only what changes now
    _backfill(sc)
    before = table_snapshot(bq_dataset, DAILY)

    # More traffic arrives: one more message, read the next day.
    traffic.agent_messages([("late-msg", "agent-a", "+15550009999", utc(2026, 2, 3, 10))])
    traffic.receipt("READ", "late-msg", "agent-a", "+15550009999", utc(2026, 2, 4, 10))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise gexc.ServiceUnavailable("injected: BigQuery went away")

    monkeypatch.setattr(Warehouse, "replace_daily", broken)
    failed = post_refresh({"start": "2026-02-01", "end": "2026-02-12"}, expect=503)
    assert "retry" in failed["error"]
    # The mirror already has the new message; the daily tables are the previous run's.
    assert "late-msg" in {r["message_id"] for r in table_rows(bq_dataset, "agent_messages")}
    assert table_snapshot(bq_dataset, DAILY) == before
    runs = latest_runs(bq_dataset)
    assert [r["status"] for r in runs] == ["succeeded", "failed"]
    assert "injected: BigQuery went away" in runs[-1]["error"]
    assert runs[-1]["documents_read"] == 1  # only the changed document was read
    assert runs[-1]["finished_at"] >= runs[-1]["started_at"]

    monkeypatch.undo()
    retried = _backfill(sc)
    assert retried["documents_read"] == 1  # the watermark did not move on failure
    sc.agent_msgs.append(
        scenario.AgentMsg("late-msg", "agent-a", "+15550009999", utc(2026, 2, 3, 10), None,
                          utc(2026, 2, 4, 10))
    )  # fmt: skip
    assert_tables_match(bq_dataset, expected(sc.agent_msgs, sc.user_msgs, sc.typing, _dates(sc)))
    runs = latest_runs(bq_dataset)
    assert [r["status"] for r in runs] == ["succeeded", "failed", "succeeded"]
    # Each run also left its "running" row, written as it started.
    assert sorted(r["status"] for r in table_rows(bq_dataset, "refresh_runs")).count("running") == 3


def test_unchanged_firestore_reads_zero_documents(
    ingest_client: Any, bq_dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFRESH_OVERLAP_SECONDS", "0.5")
    traffic = Traffic(ingest_client)
    traffic.agent_messages([("m1", "agent-a", "+15550001111", utc(2026, 2, 2, 9))])
    traffic.receipt("READ", "m1", "agent-a", "+15550001111", utc(2026, 2, 2, 10))
    traffic.typing("e1", "agent-a", "+15550001111", utc(2026, 2, 2, 10, 1))
    time.sleep(0.6)  # past the overlap margin
    body = {"start": "2026-02-01", "end": "2026-02-03"}
    assert post_refresh(body)["documents_read"] == 2
    again = post_refresh(body)
    assert again["documents_read"] == 0
    assert again["rows_written"] == 1  # the one daily_metrics row, recomputed
    traffic.user_message("u1", "agent-a", "+15550001111", utc(2026, 2, 2, 10, 2), "text")
    time.sleep(0.6)
    assert post_refresh(body)["documents_read"] == 1

    # Another dataset (a by-hand run into a test dataset) has a watermark of its
    # own: it reads everything, and the first dataset's watermark stays put.
    monkeypatch.setenv("BQ_DATASET", f"{bq_dataset}_other")
    clients.reset()
    assert post_refresh(body)["documents_read"] == 3
    monkeypatch.setenv("BQ_DATASET", bq_dataset)
    clients.reset()
    assert post_refresh(body)["documents_read"] == 0


def test_run_date_recomputes_exactly_the_eight_days_before_it(
    ingest_client: Any, bq_dataset: str
) -> None:
    traffic = Traffic(ingest_client)
    phone = "+15550002222"
    # One message a day, Jan 1 … Jan 20, each read an hour later.
    for day in range(1, 21):
        mid = f"d{day:02d}"
        traffic.agent_messages([(mid, "agent-a", phone, utc(2026, 1, day, 12))])
        traffic.receipt("READ", mid, "agent-a", phone, utc(2026, 1, day, 13))
    post_refresh({"start": "2026-01-01", "end": "2026-01-20"})
    first = {r["date"]: r for r in table_rows(bq_dataset, "daily_metrics")}
    assert len(first) == 20

    # Late news for Jan 2 (sent 12:00, read on Jan 9 at 23:00: before its cutoff
    # Jan 10 00:00) and for Jan 8 (a second message, read within the window).
    traffic.agent_messages([("late-jan2", "agent-a", phone, utc(2026, 1, 2, 15))])
    traffic.receipt("READ", "late-jan2", "agent-a", phone, utc(2026, 1, 9, 23))
    traffic.agent_messages([("late-jan8", "agent-a", phone, utc(2026, 1, 8, 15))])
    traffic.receipt("READ", "late-jan8", "agent-a", phone, utc(2026, 1, 9, 1))

    summary = post_refresh({"run_date": "2026-01-11"})
    recomputed = [date(2026, 1, d) for d in range(3, 11)]
    assert summary["dates"] == [d.isoformat() for d in recomputed]
    after = {r["date"]: r for r in table_rows(bq_dataset, "daily_metrics")}
    for day, row in after.items():
        if day in recomputed:
            assert row["refreshed_at"] > first[day]["refreshed_at"], day
        else:  # frozen: not rewritten at all
            assert row == first[day], day
    assert (after[date(2026, 1, 8)]["sent"], after[date(2026, 1, 8)]["read"]) == (2, 2)
    # Jan 2 is outside R-8 … R-1: it keeps its old numbers although the mirror has news.
    assert (after[date(2026, 1, 2)]["sent"], after[date(2026, 1, 2)]["read"]) == (1, 1)

    backfill = post_refresh({"start": "2026-01-02", "end": "2026-01-02"})
    assert backfill["dates"] == ["2026-01-02"]
    jan2 = next(r for r in table_rows(bq_dataset, "daily_metrics") if r["date"] == date(2026, 1, 2))
    assert (jan2["sent"], jan2["read"]) == (2, 2)


def test_cli_refresh_prints_the_summary(
    ingest_client: Any, bq_dataset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    traffic = Traffic(ingest_client)
    traffic.agent_messages([("c1", "agent-a", "+15550003333", utc(2026, 1, 5, 9))])
    assert cli.main(["refresh", "--start", "2026-01-05", "--end", "2026-01-06"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{\n") :])
    assert summary["dates"] == ["2026-01-05", "2026-01-06"]
    assert summary["documents_read"] == 1
    (row,) = table_rows(bq_dataset, "daily_metrics")
    assert (row["date"], row["sent"]) == (date(2026, 1, 5), 1)
    (run,) = latest_runs(bq_dataset)
    assert (run["status"], run["first_date"], run["last_date"]) == (
        "succeeded", date(2026, 1, 5), date(2026, 1, 6),
    )  # fmt: skip


def test_cli_bad_dates_exit_2_without_running(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["refresh", "--start", "2026-01-06", "--end", "2026-01-05"]) == 2
    assert "start 2026-01-06 is after end 2026-01-05" in capsys.readouterr().err
    assert cli.main(["refresh", "--run-date", "2026-13-01"]) == 2
    assert "--run-date is not a valid calendar date" in capsys.readouterr().err


def test_a_damaged_document_is_skipped_not_blocking(ingest_client: Any, bq_dataset: str) -> None:
    traffic = Traffic(ingest_client)
    traffic.user_message("ok", "agent-a", "+15550004444", utc(2026, 1, 5, 9), "text")
    # Written by something other than ingest, without the agent id.
    firestore.Client(project=PROJECT).collection("user_messages").document("damaged").set(
        {"user_key": "k", "kind": "text", "event_at_us": us(utc(2026, 1, 5, 10)),
         SHARD_FIELD: shard_of("damaged", get_settings().shard_count),
         "updated_at": firestore.SERVER_TIMESTAMP}
    )  # fmt: skip
    summary = post_refresh({"start": "2026-01-05", "end": "2026-01-05"})
    assert (summary["documents_read"], summary["documents_skipped"]) == (2, 1)
    assert [r["message_id"] for r in table_rows(bq_dataset, "user_messages")] == ["ok"]
    (row,) = table_rows(bq_dataset, "daily_metrics")
    assert row["user_messages"] == 1
