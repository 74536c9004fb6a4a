"""The local stack end to end, started the way ``make run`` starts it.

``rbm-analytics serve`` runs as a subprocess on free ports with a temporary
data directory; simulated traffic goes through the real HTTP endpoints into
the real emulators; the local scheduler fires the refresh; BigQuery's daily
tables and the CSV downloaded from ``export`` must then hold exactly the
simulator's ground truth. The scheduler's refresh is the morning job's
stand-in, as in the cloud: N task processes of one execution (N set by
``--refresh-tasks``), exactly one of which computes the daily tables. The
demo bot behind ingest's relay must have received every webhook request
byte for byte, although it is stopped (SIGSTOP) for a while mid-run: ingest
answers 503 then, the simulator retries as RBM does, and nothing is lost or
counted twice. The stack is stopped with SIGTERM and must leave no process
and no port behind; a second start on the same data finds it all and exports
the same CSV.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from rbm_analytics.core.timeutil import datetime_to_us, today_utc, utc_date
from rbm_analytics_dev.local import emulators
from rbm_analytics_dev.local.bot import Delivery, read_record
from rbm_analytics_dev.local.job import DEFAULT_TASKS
from rbm_analytics_dev.local.sender import Sender, SendReport
from rbm_analytics_dev.local.simulate import (
    COUNT_COLUMNS,
    DURATION_COLUMNS,
    USER_KINDS,
    PlanConfig,
    PlannedRequest,
    TrafficPlan,
    agent_ids,
    plan_backfill,
)
from rbm_analytics_dev.local.stack import LOCAL_DATASET, LOCAL_FORWARD_TIMEOUT_S, local_target

from tests.e2e.stack_support import (
    ServeProcess,
    alive,
    bigquery_rows,
    firestore_count,
    free_ports,
    http,
)

SEED = 606
# Not the default, so the flag is seen to reach the scheduler's job.
REFRESH_TASKS = 3


@dataclass
class FirstRun:
    plan: TrafficPlan
    report: SendReport
    documents: dict[str, int]
    run_date: date
    refresh: tuple[int, Any]  # the scheduler's answer: status, body
    daily_metrics: list[dict[str, Any]]
    daily_postbacks: list[dict[str, Any]]
    export: tuple[int, dict[str, str], bytes]  # GET export: status, headers, CSV
    cli_export: subprocess.CompletedProcess[bytes]  # rbm-analytics export, local.env
    exit_code: int
    descendants: list[psutil.Process]
    ports: dict[str, int]
    data_dir: Any
    output: str
    sent_bodies: set[bytes]  # every webhook request body the simulator sent
    bot_deliveries: list[Delivery]  # what the demo bot received
    ingest_log: list[dict[str, Any]]  # ingest's request log lines


class RecordingSender(Sender):
    """The simulator, keeping each webhook body it sends (retries resend the same bytes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent_bodies: set[bytes] = set()

    def _encode(self, req: PlannedRequest) -> tuple[str, bytes, dict[str, str]]:
        path, body, headers = super()._encode(req)
        if req.route == "webhook":
            with self._lock:
                self.sent_bodies.add(body)
        return path, body, headers


def stop_bot_for_a_while(serve: ServeProcess, sender: Sender, after: int) -> threading.Thread:
    """Freeze the demo bot once ``after`` requests went through, long enough for
    ingest's forwards to time out, then let it go on."""
    (bot,) = [p for p in serve.descendants() if "rbm_analytics_dev.local.bot" in p.cmdline()]

    def run() -> None:
        while sender.report.requests < after:
            threading.Event().wait(0.05)
        bot.suspend()
        try:
            threading.Event().wait(2 * LOCAL_FORWARD_TIMEOUT_S + 1)
        finally:
            bot.resume()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def ingest_log(data_dir: Path) -> list[dict[str, Any]]:
    lines = (data_dir / "logs" / "ingest.log").read_text(errors="replace").splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in entries if e.get("message") == "ingest request"]


EXPORTED = (*COUNT_COLUMNS, *DURATION_COLUMNS, "delivery_rate", "read_rate")


def refreshed_dates(run_date: date, window: int) -> list[date]:
    return [run_date - timedelta(days=n) for n in range(window, 0, -1)]


def export_url(serve: ServeProcess, run_date: date, window: int) -> str:
    dates = refreshed_dates(run_date, window)
    query = {"start": dates[0], "end": dates[-1], "metrics": ",".join(EXPORTED), "format": "csv"}
    return serve.url("export") + "/?" + urllib.parse.urlencode(query)


def export_with_cli(
    env_file: Path, run_date: date, window: int
) -> subprocess.CompletedProcess[bytes]:
    """``rbm-analytics export`` with the environment the stack's local.env gives."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    for line in env_file.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    dates = refreshed_dates(run_date, window)
    cli = Path(sys.executable).parent / "rbm-analytics"
    return subprocess.run(
        [str(cli), "export", "--start", str(dates[0]), "--end", str(dates[-1]),
         "--metrics", ",".join(EXPORTED)],
        env=env, capture_output=True, timeout=300, check=False,
    )  # fmt: skip


def daily_tables(bigquery_port: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ds = LOCAL_DATASET
    return (
        bigquery_rows(bigquery_port, f"SELECT * FROM {ds}.daily_metrics ORDER BY date, agent_id"),
        bigquery_rows(bigquery_port, f"SELECT * FROM {ds}.daily_postbacks"),
    )


COLLECTIONS = ("agent_messages", "user_messages", "user_events")


def stored_documents(host: str) -> dict[str, int]:
    counts = {c: firestore_count(host, c) for c in COLLECTIONS}
    for kind in USER_KINDS:
        counts[kind] = firestore_count(host, "user_messages", {"kind": kind})
    return counts


def expected_documents(plan: TrafficPlan) -> dict[str, int]:
    c = plan.counts()
    expected = {
        "agent_messages": c["sent"],
        "user_messages": sum(c[k] for k in USER_KINDS),
        "user_events": c["IS_TYPING"],
    }
    expected.update({k: c[k] for k in USER_KINDS})
    return expected


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    data_dir = tmp_path_factory.mktemp("stack-data")
    ports = free_ports()
    serve = ServeProcess(data_dir, ports, "--refresh-tasks", str(REFRESH_TASKS))
    descendants: list[psutil.Process] = []
    try:
        serve.wait_ready()
        descendants = serve.descendants()
        print(f"seed {SEED}; stack ready in {serve.startup_s:.1f}s")
        midnight = datetime_to_us(datetime.combine(today_utc(), time(), UTC))
        # A fixed clock: the plan ends at today's midnight UTC, so one seed is
        # one set of traffic whatever the hour the test runs at.
        plan = plan_backfill(PlanConfig(agents=2, users=20, days=3, end_us=midnight, seed=SEED))
        target = local_target(serve.url("ingest"))
        sender = RecordingSender(target, concurrency=4)
        outage = stop_bot_for_a_while(serve, sender, after=len(plan.requests) // 3)
        report = sender.run(plan.requests)
        outage.join(60)
        documents = stored_documents(f"127.0.0.1:{ports['firestore']}")
        # The scheduler's run-now, as the morning job would run on this date.
        run_date = utc_date(plan.config.end_us)
        body = json.dumps({"run_date": str(run_date)}).encode()
        status, _, answer = http("POST", serve.url("scheduler") + "/run", body)
        metrics, postbacks = daily_tables(ports["bigquery"])
        exported = http("GET", export_url(serve, run_date, plan.config.window_days))
        cli_export = export_with_cli(data_dir / "local.env", run_date, plan.config.window_days)
        code = serve.stop()
        yield FirstRun(
            plan, report, documents, run_date, (status, json.loads(answer)), metrics, postbacks,
            exported, cli_export, code, descendants, ports, data_dir, serve.output(),
            sender.sent_bodies, read_record(data_dir / "bot" / "received.jsonl"),
            ingest_log(data_dir),
        )  # fmt: skip
    finally:
        if serve.proc.poll() is None or alive(descendants):
            serve.kill_everything([p.pid for p in descendants])


def test_simulated_traffic_is_stored_as_the_plan_says(first_run: FirstRun) -> None:
    report = first_run.report
    assert report.failures == 0, report.failure_samples
    assert report.requests == len(first_run.plan.requests)
    assert first_run.documents == expected_documents(first_run.plan)
    # Every duplicate copy was recognised as one; so was each retry of a request
    # that was stored but answered 503 because the bot did not take it.
    stored_then_503 = sum(e["stored"] for e in first_run.ingest_log if e["status"] == 503)
    assert report.duplicate_answers == first_run.plan.counts()["duplicates"] + stored_then_503


def test_the_bot_behind_the_relay_received_every_webhook_request_byte_for_byte(
    first_run: FirstRun,
) -> None:
    received = {d.body for d in first_run.bot_deliveries}
    webhook_requests = sum(1 for r in first_run.plan.requests if r.route == "webhook")
    assert len(first_run.sent_bodies) == webhook_requests
    missing = first_run.sent_bodies - received
    assert not missing, f"{len(missing)} webhook requests never reached the bot"
    assert received == first_run.sent_bodies  # and nothing else reached it
    assert all(d.verified for d in first_run.bot_deliveries)  # signature intact
    assert {d.content_type for d in first_run.bot_deliveries} == {"application/json"}


def test_a_stopped_bot_meant_503s_and_retries_yet_nothing_was_lost(first_run: FirstRun) -> None:
    failed = [e for e in first_run.ingest_log if e["status"] == 503]
    assert failed, "the bot was frozen, yet no forward failed"
    assert {e["forward_outcome"] for e in failed} <= {"timeout", "refused", "error"}
    assert first_run.report.retries >= len(failed) > 0
    # At least once: the bot saw some requests twice (its 503'd copy and the retry).
    assert len(first_run.bot_deliveries) > len({d.body for d in first_run.bot_deliveries})
    # The counts are checked against the ground truth by the tests around this one.
    assert first_run.report.failures == 0


def test_the_scheduled_refresh_runs_as_a_job_of_n_tasks(first_run: FirstRun) -> None:
    status, answer = first_run.refresh
    assert status == 200, answer
    job = answer["response"]
    assert answer["status"] == 200 and job["status"] == "succeeded", answer
    # N task processes of one execution, each its own CLOUD_RUN_TASK_INDEX.
    assert job["tasks"] == REFRESH_TASKS and job["failed_tasks"] == 0
    assert [t["task_index"] for t in job["per_task"]] == list(range(REFRESH_TASKS))
    assert {(t["task_count"], t["execution"]) for t in job["per_task"]} == {
        (REFRESH_TASKS, job["execution"])
    }
    # Exactly one of them computed the daily tables, after every stream was mirrored.
    assert len(job["daily_by_task"]) == 1, job
    # Together they read every document the traffic wrote, each once.
    written = sum(first_run.documents[c] for c in COLLECTIONS)
    assert job["documents_read"] == written
    dates = refreshed_dates(first_run.run_date, first_run.plan.config.window_days)
    assert {(t["first_date"], t["last_date"]) for t in job["per_task"]} == {
        (str(dates[0]), str(dates[-1]))
    }
    # What the person running make run sees.
    assert f"the refresh job: {REFRESH_TASKS} task processes" in first_run.output
    assert (
        f"[scheduler] manual refresh job: {REFRESH_TASKS} tasks ok in" in first_run.output
        and f"{written:,} documents read" in first_run.output
    ), first_run.output[-3000:]


def test_the_scheduled_refresh_computes_the_ground_truth(first_run: FirstRun) -> None:
    assert first_run.refresh[0] == 200
    dates = refreshed_dates(first_run.run_date, first_run.plan.config.window_days)
    truth = first_run.plan.truth()
    rows = {(r["date"], r["agent_id"]): r for r in first_run.daily_metrics}
    checked = 0
    for day in dates:
        for agent in first_run.plan.config.agent_ids():
            want = truth.row(day, agent)
            got = rows.get((day, agent))
            if got is None:  # no row: nothing may have happened that day
                assert all(want[c] == 0 for c in COUNT_COLUMNS), (day, agent, want)
                continue
            for column in COUNT_COLUMNS:
                assert got[column] == want[column], (day, agent, column)
            for column in DURATION_COLUMNS:
                if want[column] is None:
                    assert got[column] is None, (day, agent, column)
                else:
                    assert got[column] == pytest.approx(want[column], rel=1e-3, abs=1e-3), (
                        day, agent, column,
                    )  # fmt: skip
            checked += want["sent"]
    assert checked > 0  # the comparison covered real traffic
    postbacks = {
        (r["date"], r["agent_id"], r["postback_data"], r["kind"]): r["count"]
        for r in first_run.daily_postbacks
    }
    assert postbacks == {k: n for k, n in truth.postbacks.items() if k[0] in dates}


def test_the_csv_export_shows_the_ground_truth(first_run: FirstRun) -> None:
    status, headers, body = first_run.export
    assert status == 200, body[:500]
    assert headers["Content-Type"].startswith("text/csv")
    dates = refreshed_dates(first_run.run_date, first_run.plan.config.window_days)
    assert f"rbm-analytics_{dates[0]}_{dates[-1]}_day.csv" in headers["Content-Disposition"]
    reader = csv.reader(io.StringIO(body.decode("utf-8")))
    header = next(reader)
    assert header == ["date", "agent_id", *EXPORTED]
    rows = list(reader)
    agents = first_run.plan.config.agent_ids()
    # Every day of the range, per agent, zero-filled, sorted by date then agent.
    assert [(r[0], r[1]) for r in rows] == [(str(d), a) for d in dates for a in agents]
    truth = first_run.plan.truth()
    for row in rows:
        got = dict(zip(header, row, strict=True))
        want = truth.row(date.fromisoformat(got["date"]), got["agent_id"])
        where = (got["date"], got["agent_id"])
        for column in COUNT_COLUMNS:
            assert int(got[column]) == want[column], (*where, column)
        for column in DURATION_COLUMNS:
            if want[column] is None:
                assert got[column] == "", (*where, column)
            else:
                assert float(got[column]) == pytest.approx(want[column], rel=1e-3, abs=1e-3)
        for rate, part in (("delivery_rate", "delivered"), ("read_rate", "read")):
            expected = f"{want[part] / want['sent']:.4f}" if want["sent"] else ""
            assert got[rate] == expected, (*where, rate)
    assert sum(int(r[header.index("sent")]) for r in rows) > 0


def test_the_cli_pointed_at_the_stack_by_local_env_exports_the_same_csv(
    first_run: FirstRun,
) -> None:
    result = first_run.cli_export
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.replace(b"\r\n", b"\n") == first_run.export[2].replace(b"\r\n", b"\n")
    # The file lives as long as the stack: after the stop it is gone.
    assert not (first_run.data_dir / "local.env").exists()


def test_sigterm_stops_everything_and_frees_every_port(first_run: FirstRun) -> None:
    assert first_run.exit_code == 0, first_run.output
    names = " ".join(p.name() for p in first_run.descendants if p.is_running()) or " ".join(
        str(p.pid) for p in first_run.descendants
    )
    # The stack had both emulators (gcloud's Java server among them) and ingest.
    assert len(first_run.descendants) >= 4, names
    assert alive(first_run.descendants) == []
    held = [f"{n}:{p}" for n, p in first_run.ports.items() if emulators.port_in_use(p)]
    assert held == []
    assert "Stopped; nothing left running." in first_run.output


def test_a_restart_on_the_same_data_finds_it_all(first_run: FirstRun) -> None:
    # With the demo on: storage is not empty, so no demo traffic is added.
    serve = ServeProcess(first_run.data_dir, first_run.ports, demo=True)
    descendants: list[psutil.Process] = []
    try:
        serve.wait_ready()
        descendants = serve.descendants()
        host = f"127.0.0.1:{first_run.ports['firestore']}"
        assert stored_documents(host) == first_run.documents  # nothing lost, nothing added
        # BigQuery kept its tables: the same export, byte for byte.
        status, _, body = http(
            "GET", export_url(serve, first_run.run_date, first_run.plan.config.window_days)
        )
        assert status == 200 and first_run.export[0] == 200
        assert body == first_run.export[2]
        assert serve.stop() == 0
        assert alive(descendants) == []
    finally:
        if serve.proc.poll() is None or alive(descendants):
            serve.kill_everything([p.pid for p in descendants])


def test_a_first_start_seeds_demo_traffic_and_refreshes_it(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    ports = free_ports()
    small_demo = ("--demo-users", "6", "--demo-days", "3")
    serve = ServeProcess(tmp_path_factory.mktemp("demo-data"), ports, *small_demo, demo=True)
    descendants: list[psutil.Process] = []
    try:
        serve.wait_ready()
        descendants = serve.descendants()
        out = serve.output()
        assert "Seeding demo traffic: 3 agents, 6 users, 3 days" in out
        assert " 0  failed requests" in out
        assert f"[scheduler] manual refresh job: {DEFAULT_TASKS} tasks ok" in out
        # The Analytics page has numbers at once: every demo agent has sent messages.
        rows = bigquery_rows(
            ports["bigquery"],
            f"SELECT agent_id, SUM(sent) AS sent, SUM(read) AS read "
            f"FROM {LOCAL_DATASET}.daily_metrics GROUP BY agent_id",
        )
        assert {r["agent_id"] for r in rows if r["sent"] > 0} == set(agent_ids(3))
        assert sum(r["read"] for r in rows) > 0
        assert serve.stop() == 0
        assert alive(descendants) == []
    finally:
        if serve.proc.poll() is None or alive(descendants):
            serve.kill_everything([p.pid for p in descendants])
