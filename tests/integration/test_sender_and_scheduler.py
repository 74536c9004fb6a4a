"""The simulator's HTTP sender and the local scheduler, against loopback servers
that record the exact requests (the emulator-backed path is in tests/e2e)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rbm_analytics.core.config import Credential
from rbm_analytics.ingest.auth import verify_signature
from rbm_analytics_dev.local import emulators
from rbm_analytics_dev.local.cron import Cron
from rbm_analytics_dev.local.scheduler import HttpTarget, LocalScheduler
from rbm_analytics_dev.local.sender import Progress, Sender, SendError, Target, preflight
from rbm_analytics_dev.local.simulate import PlanConfig, plan_backfill

from tests.support import AGENT_KEY, CLIENT_TOKEN

Reply = Callable[[str, bytes, dict[str, str]], tuple[int, bytes]]


class Recorder:
    """A loopback HTTP server; ``reply`` decides each answer."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[tuple[str, str, bytes, dict[str, str]]] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the sender expects

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers.items())
                with recorder.lock:
                    recorder.requests.append((self.command, self.path, body, headers))
                status, answer = recorder.reply(self.path, body, headers)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = _handle
            do_GET = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", emulators.free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder_factory() -> Iterator[Callable[[Reply], Recorder]]:
    made: list[Recorder] = []

    def make(reply: Reply) -> Recorder:
        made.append(Recorder(reply))
        return made[-1]

    yield make
    for r in made:
        r.close()


def ingest_like(flaky: dict[str, int] | None = None) -> Reply:
    """Answers like ingest; the first ``flaky[path]`` requests to a path get a 503."""
    flaky = dict(flaky or {})
    lock = threading.Lock()

    def reply(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        with lock:
            if flaky.get(path, 0) > 0:
                flaky[path] -= 1
                return 503, b'{"error": "Firestore unavailable"}'
        doc = json.loads(body)
        if "clientToken" in doc:
            ok = doc["clientToken"] == CLIENT_TOKEN
            return (200, doc["secret"].encode()) if ok else (403, b"{}")
        if path == "/agent-messages":
            if headers.get("Authorization") != f"Bearer {AGENT_KEY}":
                return 401, b"{}"
            items = doc.get("agentMessages")
            return (200, json.dumps({"stored": len(items)}).encode()) if items else (400, b"{}")
        return 200, b'{"stored": 1, "duplicate": 0}'

    return reply


def plan() -> Any:
    print("seed 11")
    return plan_backfill(
        PlanConfig(agents=1, users=10, days=2, end_us=1_780_000_000_000_000, seed=11)
    )


def test_sender_signs_webhooks_and_batches_the_sent_log(recorder_factory: Any) -> None:
    server = recorder_factory(ingest_like())
    p = plan()
    report = Sender(Target(server.url, CLIENT_TOKEN, AGENT_KEY), concurrency=4).run(p.requests)
    assert report.failures == 0 and report.retries == 0
    assert report.requests == len(p.requests) == len(server.requests)
    webhook = [r for r in server.requests if r[1] == "/"]
    sent = [r for r in server.requests if r[1] == "/agent-messages"]
    assert len(webhook) + len(sent) == len(p.requests)
    for _, _, body, headers in webhook:
        data = base64.b64decode(json.loads(body)["message"]["data"])
        # Raises if the signature is wrong.
        verify_signature(data, headers["X-Goog-Signature"], (Credential(CLIENT_TOKEN),))
    records = [m for _, _, body, _ in sent for m in json.loads(body)["agentMessages"]]
    planned = [e for e in p.events if e.kind == "sent"]
    assert len({m["name"] for m in records}) == len(planned)
    assert all(h["Authorization"] == f"Bearer {AGENT_KEY}" for *_, h in sent)
    counts = p.counts()
    assert report.events["sent"] == counts["sent"]
    assert report.events["DELIVERED"] == counts["DELIVERED"]
    assert report.duplicates == counts["duplicates"]


def test_503s_are_retried_until_accepted_and_nothing_is_dropped(recorder_factory: Any) -> None:
    server = recorder_factory(ingest_like({"/": 7, "/agent-messages": 3}))
    p = plan()
    report = Sender(Target(server.url, CLIENT_TOKEN, AGENT_KEY), concurrency=2).run(p.requests)
    assert report.retries == 10
    assert report.failures == 0
    assert report.requests == len(p.requests)
    assert len(server.requests) == len(p.requests) + 10


def test_a_rejected_request_is_a_reported_failure_not_retried(recorder_factory: Any) -> None:
    server = recorder_factory(
        lambda path, body, headers: (400, b'{"error": "messageId is missing"}')
    )
    p = plan()
    report = Sender(Target(server.url, CLIENT_TOKEN, AGENT_KEY), concurrency=2).run(p.requests[:5])
    assert (report.failures, report.retries, report.requests) == (5, 0, 0)
    assert "messageId is missing" in report.failure_samples[0]
    assert "5  failed requests" in report.render()


def test_giving_up_after_the_deadline_counts_a_failure(recorder_factory: Any) -> None:
    server = recorder_factory(lambda path, body, headers: (503, b"{}"))
    p = plan()
    sender = Sender(Target(server.url, CLIENT_TOKEN, AGENT_KEY), concurrency=1, give_up_after_s=0.3)
    report = sender.run(p.requests[:1])
    assert report.failures == 1 and report.retries >= 1
    assert "gave up" in report.failure_samples[0]


def test_preflight_names_a_wrong_token_key_or_url(recorder_factory: Any) -> None:
    server = recorder_factory(ingest_like())
    preflight(Target(server.url, CLIENT_TOKEN, AGENT_KEY))  # right secrets: no error
    with pytest.raises(SendError, match="client token"):
        preflight(Target(server.url, "wrong", AGENT_KEY))
    with pytest.raises(SendError, match="API key"):
        preflight(Target(server.url, CLIENT_TOKEN, "wrong"))
    with pytest.raises(SendError, match="cannot reach"):
        preflight(Target(f"http://127.0.0.1:{emulators.free_port()}", CLIENT_TOKEN, AGENT_KEY))
    assert not any(r[1] == "/" and b"message" in r[2] for r in server.requests)  # stored nothing


def test_progress_line_shows_counts_and_rate() -> None:
    import io

    out = io.StringIO()
    progress = Progress(200, stream=out)
    progress.update(50, 60, 2, force=True)
    line = out.getvalue()
    assert "50/200 requests" in line and "25%" in line and "events/s" in line
    assert "retries 2" in line


# -- scheduler -------------------------------------------------------------------
def test_scheduler_run_now_forwards_the_body_and_the_answer(recorder_factory: Any) -> None:
    refresh = recorder_factory(lambda path, body, headers: (200, b'{"dates": ["2026-01-01"]}'))
    sched = LocalScheduler(
        Cron.parse("0 6 * * *"), HttpTarget(refresh.url + "/"), emulators.free_port()
    )
    sched.start()
    try:
        import urllib.request

        req = urllib.request.Request(
            f"{sched.url}/run",
            data=b'{"start": "2026-01-01", "end": "2026-01-02"}',
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = json.loads(resp.read())
        assert resp.status == 200
        assert answer["response"] == {"dates": ["2026-01-01"]}
        assert refresh.requests[0][:3] == (
            "POST",
            "/",
            b'{"start": "2026-01-01", "end": "2026-01-02"}',
        )
        with urllib.request.urlopen(f"{sched.url}/", timeout=30) as resp:
            status = json.loads(resp.read())
        assert status["schedule"] == "0 6 * * *" and status["runs"] == 1
        assert status["next_run"].endswith("T06:00:00Z")
    finally:
        sched.stop()


def test_scheduler_fires_on_its_cron_with_an_empty_body(recorder_factory: Any) -> None:
    refresh = recorder_factory(lambda path, body, headers: (200, b"{}"))
    fired = threading.Event()
    # A clock 0.3 s before 06:00 UTC: the default schedule is due at once.
    offset = datetime(2026, 1, 1, 5, 59, 59, 700_000, tzinfo=UTC) - datetime.now(UTC)

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    sched = LocalScheduler(
        Cron.parse("0 6 * * *"),
        HttpTarget(refresh.url + "/"),
        emulators.free_port(),
        on_run=lambda result: fired.set(),
        now=clock,
    ).start()
    try:
        assert fired.wait(30)
        assert refresh.requests[0][:3] == ("POST", "/", b"{}")
        assert sched.last_run is not None and sched.last_run.trigger == "schedule"
        deadline = time.monotonic() + 30
        while sched.status()["next_run"] != "2026-01-02T06:00:00Z":
            assert time.monotonic() < deadline, sched.status()
            time.sleep(0.05)
    finally:
        sched.stop()


def test_scheduler_reports_an_unreachable_refresh() -> None:
    sched = LocalScheduler(
        Cron.parse("0 6 * * *"), HttpTarget(f"http://127.0.0.1:{emulators.free_port()}/"), 0
    )
    result = sched.trigger()
    assert result.status == 0 and "unreachable" in result.body
    assert sched.status()["last_run"]["status"] == 0


def test_live_traffic_is_sent_when_due_and_its_truth_is_what_was_sent(
    recorder_factory: Any, tmp_path: Any
) -> None:
    from rbm_analytics_dev.cli import main

    server = recorder_factory(ingest_like())
    truth_file = tmp_path / "truth.json"
    code = main(
        [
            "simulate", "--url", server.url, "--client-token", CLIENT_TOKEN,
            "--api-key", AGENT_KEY, "--live", "--rate", "40", "--duration", "3",
            "--seed", "9", "--quiet", "--truth", str(truth_file),
        ]
    )  # fmt: skip
    assert code == 0
    posted = [
        r
        for r in server.requests
        if b"clientToken" not in r[2] and r[2] != b'{"agentMessages": []}'
    ]
    assert posted, "live traffic sent nothing"
    truth = json.loads(truth_file.read_text())
    sent_records = sum(
        len(json.loads(body)["agentMessages"])
        for _, path, body, _ in posted
        if path == "/agent-messages"
    )
    assert sum(row["sent"] for row in truth["daily_metrics"]) == sent_records
    # Every webhook event's own time had come when it was sent.
    for _, path, body, _headers in posted:
        if path == "/":
            data = json.loads(base64.b64decode(json.loads(body)["message"]["data"]))
            publish = json.loads(body)["message"]["publishTime"]
            assert data["sendTime"] <= publish


def test_the_schedule_command_drives_the_local_scheduler(
    recorder_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rbm-analytics schedule`` talks Cloud Scheduler v1 REST; locally, to this stand-in."""
    from rbm_analytics_dev.cli import main

    refresh = recorder_factory(lambda path, body, headers: (503, b'{"error": "BigQuery down"}'))
    sched = LocalScheduler(
        Cron.parse("0 6 * * *"),
        HttpTarget(refresh.url + "/"),
        emulators.free_port(),
        project="demo-p",
    ).start()
    monkeypatch.setenv("CLOUD_SCHEDULER_EMULATOR_HOST", f"127.0.0.1:{sched.port}")
    try:
        assert main(["schedule", "status", "--project", "demo-p"]) == 0
        out = capsys.readouterr().out
        assert "projects/demo-p/locations/us-central1/jobs/rbm-analytics-refresh" in out
        assert "0 6 * * * (Etc/UTC)" in out and "ENABLED" in out and "06:00:00 UTC" in out
        assert "last attempt:  never" in out

        assert main(["schedule", "run", "--project", "demo-p"]) == 0
        deadline = time.monotonic() + 30
        while sched.last_run is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert refresh.requests[0][:3] == ("POST", "/", b"{}")
        assert main(["schedule", "status", "--project", "demo-p"]) == 0
        assert "failed (UNAVAILABLE): HTTP 503" in capsys.readouterr().out

        assert main(["schedule", "pause", "--project", "demo-p"]) == 0
        assert "PAUSED" in capsys.readouterr().out and sched.status()["next_run"] is None
        assert main(["schedule", "resume", "--project", "demo-p"]) == 0
        assert "ENABLED" in capsys.readouterr().out
        assert sched.status()["next_run"].endswith("T06:00:00Z")

        assert main(["schedule", "status", "--project", "other"]) == 1
        assert "not found" in capsys.readouterr().err
    finally:
        sched.stop()
