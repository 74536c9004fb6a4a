"""The local scheduler starts the refresh job as the cloud's does: N tasks of one execution.

Traffic goes through the real ingest handler into the Firestore emulator; the
scheduler (``make run``'s Cloud Scheduler stand-in) fires on its cron, and on
``POST /run``, an execution of the refresh job's stand-in: four processes of
``python -m rbm_analytics.refresh.job`` against the real emulators. What a
user sees: four per-task entries of one execution, exactly one of which ran
the daily step, the documents read equal to the documents written, daily
tables equal to the plain-Python reference, and the result in the
scheduler's status and in ``rbm-analytics schedule status``. A task that
fails makes the run a failure (HTTP 500, the Cloud Scheduler attempt
INTERNAL), and a body naming no valid dates starts no task.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from google.cloud import bigquery
from rbm_analytics.core import clients
from rbm_analytics.core.tables import ensure_tables
from rbm_analytics.core.timeutil import today_utc
from rbm_analytics_dev.local import emulators
from rbm_analytics_dev.local.cron import Cron
from rbm_analytics_dev.local.job import JOB_MODULE, LocalJob
from rbm_analytics_dev.local.scheduler import JobTarget, LocalScheduler, RunResult
from rbm_analytics_dev.reference import expected

from tests.integration import scenario
from tests.integration.refresh_support import Traffic, assert_tables_match, table_rows
from tests.support import PROJECT

TASKS = 4
FIRST_DAY = date(2026, 3, 1)
COLLECTIONS = ("agent_messages", "user_messages", "user_events")


class Scheduled:
    """A started, paused scheduler with a clock of its own, and what it reported."""

    def __init__(self, log: Path) -> None:
        self.fired = threading.Event()
        self.reported: list[RunResult] = []
        self.offset = timedelta(0)
        self.job = LocalJob(TASKS, log_path=log)
        self.scheduler = LocalScheduler(
            Cron.parse("0 6 * * *"),
            JobTarget(self.job),
            emulators.free_port(),
            project=PROJECT,
            on_run=self._on_run,
            now=lambda: datetime.now(UTC) + self.offset,
        )

    def fire_on_schedule(self) -> None:
        """Set the clock 0.3 s before 06:00 UTC and resume: the default schedule is due."""
        self.offset = datetime(2026, 11, 30, 5, 59, 59, 700_000, tzinfo=UTC) - datetime.now(UTC)
        self.scheduler.set_paused(False)

    def _on_run(self, result: RunResult) -> None:
        self.reported.append(result)
        self.fired.set()

    def post_run(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(
            f"{self.scheduler.url}/run",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def scheduled(bq_dataset: str, tmp_path: Path) -> Iterator[Scheduled]:
    # The stack makes the tables at start-up (Terraform does in the cloud),
    # so the tasks do not race to create them.
    ensure_tables(clients.bigquery_client(), PROJECT, bq_dataset, "US")
    sched = Scheduled(tmp_path / "refresh-job.log")
    sched.scheduler.set_paused(True)  # until the test sets its clock
    sched.scheduler.start()
    try:
        yield sched
    finally:
        sched.scheduler.stop()


def written_documents() -> int:
    fs = clients.firestore_client()
    return sum(int(fs.collection(c).count().get()[0][0].value) for c in COLLECTIONS)


def assert_one_execution_of_n_tasks(summary: dict[str, Any]) -> None:
    tasks = summary["per_task"]
    assert summary["tasks"] == TASKS and len(tasks) == TASKS
    assert [t["task_index"] for t in tasks] == list(range(TASKS))
    assert {t["task_count"] for t in tasks} == {TASKS}
    assert {t["execution"] for t in tasks} == {summary["execution"]}


def test_the_scheduled_run_and_run_now_start_the_job_of_n_tasks(
    ingest_client: Any, scheduled: Scheduled
) -> None:
    seed = int(os.environ.get("SCHEDULER_JOB_SEED") or random.randrange(1 << 30))
    print(f"SCHEDULER_JOB_SEED={seed}")
    sc = scenario.build(seed, FIRST_DAY, days=10)
    scenario.push(sc, Traffic(ingest_client))
    written = written_documents()
    assert written == len(sc.agent_msgs) + len(sc.user_msgs) + len(sc.typing) > 0

    # The morning run: the cron fires, the job gets no dates (R-8 … R-1).
    scheduler = scheduled.scheduler
    scheduled.fire_on_schedule()
    assert scheduled.fired.wait(600), "the schedule did not fire"
    morning = scheduled.reported[0]
    assert morning.trigger == "schedule" and morning.status == 200, morning.body[-3000:]
    summary = morning.job
    assert summary is not None and summary["status"] == "succeeded"
    assert_one_execution_of_n_tasks(summary)
    assert summary["failed_tasks"] == 0
    assert len(summary["daily_by_task"]) == 1, summary
    # Each stream has one reader: together the tasks read every document once.
    assert summary["documents_read"] == written
    today = today_utc()
    assert {(t["first_date"], t["last_date"]) for t in summary["per_task"]} == {
        (str(today - timedelta(days=8)), str(today - timedelta(days=1)))
    }
    scheduler.set_paused(True)

    # POST /run with the scenario's dates: the daily tables of those dates.
    dates = {"start": str(FIRST_DAY), "end": str(sc.last_day)}
    status, answer = scheduled.post_run(dates)
    assert status == 200, answer
    assert answer["trigger"] == "manual" and answer["status"] == 200
    assert_one_execution_of_n_tasks(answer["response"])
    assert answer["response"]["execution"] != summary["execution"]
    assert len(answer["response"]["daily_by_task"]) == 1
    days = {FIRST_DAY + timedelta(days=i) for i in range(sc.days)}
    dataset = os.environ["BQ_DATASET"]
    assert_tables_match(dataset, expected(sc.agent_msgs, sc.user_msgs, sc.typing, days))

    # The scheduler's status and the Cloud Scheduler API show the last run.
    status_doc = scheduler.status()
    assert status_doc["runs"] == 2 and status_doc["last_run"]["status"] == 200
    assert status_doc["target"] == f"refresh job: {TASKS} local tasks of python -m {JOB_MODULE}"
    job = scheduler.job(int_enums=False)
    assert job["status"] == {} and "lastAttemptTime" in job
    assert job["description"].startswith("Each morning: start the refresh job")
    # Every task's own output is kept.
    log = scheduled.job.log_path
    assert log is not None
    assert log.read_text().count('"message":"refresh task"') == 2 * TASKS


def test_a_failed_task_makes_the_run_a_failure(ingest_client: Any, scheduled: Scheduled) -> None:
    sc = scenario.build(7, FIRST_DAY, days=3)
    scenario.push(sc, Traffic(ingest_client))
    # A daily table whose agent_id BigQuery cannot write a string into: the
    # mirror succeeds, the daily step (one task's) fails.
    client = clients.bigquery_client()
    dataset = os.environ["BQ_DATASET"]
    table = f"{PROJECT}.{dataset}.daily_metrics"
    client.delete_table(table)
    client.create_table(bigquery.Table(table, schema=[bigquery.SchemaField("agent_id", "INT64")]))
    ensure_tables(client, PROJECT, dataset, "US")  # the other columns, as the stack adds them

    status, answer = scheduled.post_run({"start": str(FIRST_DAY), "end": str(sc.last_day)})
    assert status == 500, answer
    summary = answer["response"]
    assert summary["status"] == "failed"
    assert_one_execution_of_n_tasks(summary)
    failed = [t for t in summary["per_task"] if t["exit_code"] != 0]
    assert len(failed) == summary["failed_tasks"] == 1, summary
    assert failed[0]["status"] == "failed" and failed[0]["error"]
    assert summary["daily_by_task"] == []
    assert table_rows(dataset, "daily_metrics") == []
    # Cloud Scheduler's view of the attempt: INTERNAL, naming the failed task.
    job = scheduled.scheduler.job(int_enums=False)
    assert job["status"] == {"code": 13, "message": "1 of 4 tasks failed"}
    assert scheduled.scheduler.status()["last_run"]["status"] == 500


def test_a_body_with_no_valid_dates_starts_no_task(scheduled: Scheduled) -> None:
    status, answer = scheduled.post_run({"start": "2026-02-30"})
    assert status == 400
    assert "start" in answer["response"]["error"]
    status, answer = scheduled.post_run({"intraday": True})
    assert status == 400 and "intraday" in answer["response"]["error"]
    # No task ran: nothing in the job's log.
    log = scheduled.job.log_path
    assert log is not None and not log.exists()


def test_unusable_settings_start_no_task(tmp_path: Path) -> None:
    log = tmp_path / "refresh-job.log"
    target = JobTarget(LocalJob(TASKS, env={"BACKFILL_DAYS": "a week"}, log_path=log))
    status, body = target.fire({})
    assert status == 503 and "BACKFILL_DAYS" in json.loads(body)["error"]
    assert not log.exists()


def test_stopping_the_scheduler_ends_the_tasks_in_flight(bq_dataset: str, tmp_path: Path) -> None:
    """``make run``'s Ctrl-C during a run: no task outlives the scheduler."""
    ensure_tables(clients.bigquery_client(), PROJECT, bq_dataset, "US")
    job = LocalJob(TASKS, log_path=tmp_path / "refresh-job.log")
    reported: list[RunResult] = []
    sched = LocalScheduler(
        Cron.parse("0 6 * * *"), JobTarget(job), emulators.free_port(), on_run=reported.append
    ).start()
    runner = threading.Thread(target=sched.trigger, daemon=True)
    runner.start()

    def tasks() -> list[psutil.Process]:
        found = []
        for proc in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if JOB_MODULE in proc.cmdline():
                    found.append(proc)
        return found

    deadline = time.monotonic() + 60
    while len(tasks()) < TASKS:
        assert time.monotonic() < deadline, "the tasks did not start"
        time.sleep(0.02)
    running = tasks()
    sched.stop()
    runner.join(60)
    assert not runner.is_alive()
    gone, alive = psutil.wait_procs(running, timeout=5)
    assert alive == [] and len(gone) == TASKS
    # Ended by the stop (SIGTERM, as Cloud Run stops a task): a failed run,
    # recorded but not reported as news.
    last = sched.last_run
    assert last is not None and last.status == 500
    summary = last.job
    assert summary is not None
    assert [t["exit_code"] for t in summary["per_task"]] == [-signal.SIGTERM] * TASKS
    assert reported == []
