"""``rbm-analytics schedule`` against a local stand-in of the Cloud Scheduler v1 REST API.

Google ships no Cloud Scheduler emulator, so the test serves the four v1
routes the CLI uses on a loopback port, records every request exactly
(method, path, query, body) and answers the way the API does: the Job as
JSON, or a Google error body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from rbm_analytics_dev import cli
from rbm_analytics_dev import cloud_scheduler as scheduler

from tests.infra import hcl
from tests.support import PROJECT

LOCATION = "us-central1"
JOB = "rbm-analytics-refresh"
NAME = f"projects/{PROJECT}/locations/{LOCATION}/jobs/{JOB}"
PATH = f"/v1/{NAME}"
REFRESH_URL = "https://rbm-analytics-refresh-abc123-uc.a.run.app"


def job_json(**overrides: Any) -> dict[str, Any]:
    job = {
        "name": NAME,
        "description": "Each morning: recompute the last BACKFILL_DAYS UTC days in BigQuery",
        "schedule": "0 6 * * *",
        "timeZone": "Etc/UTC",
        "state": "ENABLED",
        "attemptDeadline": "1800s",
        "httpTarget": {
            "uri": REFRESH_URL,
            "httpMethod": "POST",
            "oidcToken": {
                "serviceAccountEmail": f"rbm-analytics-scheduler@{PROJECT}.iam.gserviceaccount.com",
                "audience": REFRESH_URL,
            },
        },
        "userUpdateTime": "2026-11-20T10:00:00Z",
        "scheduleTime": "2026-11-27T06:00:00Z",
        "lastAttemptTime": "2026-11-26T06:00:01.250Z",
        "status": {},
    }
    job.update(overrides)
    return {k: v for k, v in job.items() if v is not None}


@dataclass
class StandIn:
    """Cloud Scheduler v1 jobs.get / run / pause / resume, in memory."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, str, Any]] = field(default_factory=list)
    host: str = ""

    def answer(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        name, _, verb = path.removeprefix("/v1/").partition(":")
        if name in self.forbidden:
            return 403, _error(403, "PERMISSION_DENIED", "The caller does not have permission")
        job = self.jobs.get(name)
        if job is None:
            return 404, _error(404, "NOT_FOUND", "Job not found.")
        if (method, verb) == ("GET", ""):
            return 200, job
        if method != "POST":
            return 405, _error(405, "UNIMPLEMENTED", "")
        if verb == "run":
            return 200, job
        if verb == "pause":
            job["state"] = "PAUSED"
            job.pop("scheduleTime", None)
            return 200, job
        if verb == "resume":
            job["state"] = "ENABLED"
            job["scheduleTime"] = "2026-11-27T06:00:00Z"
            return 200, job
        return 404, _error(404, "NOT_FOUND", f"unknown method {verb}")


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


# The REST transport asks for enums as numbers ($alt=json;enum-encoding=int).
STATES = {"STATE_UNSPECIFIED": 0, "ENABLED": 1, "PAUSED": 2, "DISABLED": 3, "UPDATE_FAILED": 4}
METHODS = {"POST": 1, "GET": 2, "HEAD": 3, "PUT": 4, "DELETE": 5, "PATCH": 6, "OPTIONS": 7}


def _int_enums(job: dict[str, Any]) -> dict[str, Any]:
    job = json.loads(json.dumps(job))
    job["state"] = STATES[job["state"]]
    job["httpTarget"]["httpMethod"] = METHODS[job["httpTarget"]["httpMethod"]]
    return job


def _handler(stand_in: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            stand_in.requests.append((self.command, url.path, url.query, body))
            status, payload = stand_in.answer(self.command, url.path)
            if status == 200 and "enum-encoding=int" in unquote(url.query):
                payload = _int_enums(payload)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    state = StandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    state.host = f"127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv(scheduler.EMULATOR_HOST_ENV, state.host)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["schedule", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_status_shows_schedule_state_next_run_and_last_attempt(
    stand_in: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in.jobs[NAME] = job_json()
    code, out, err = run_cli(capsys, "status")
    assert (code, err) == (0, "")
    assert out == (
        f"job:           {NAME}\n"
        f"target:        POST {REFRESH_URL}\n"
        "schedule:      0 6 * * * (Etc/UTC)\n"
        "state:         ENABLED\n"
        "next run:      2026-11-27 06:00:00 UTC\n"
        "last attempt:  2026-11-26 06:00:01 UTC\n"
        "last result:   OK\n"
    )
    assert [(m, p, b) for m, p, _q, b in stand_in.requests] == [("GET", PATH, None)]


def test_status_shows_why_the_last_attempt_failed(
    stand_in: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in.jobs[NAME] = job_json(
        status={
            "code": 13,
            "message": "URL_ERROR-ERROR_OTHER. Original HTTP response code number = 500",
        }
    )
    code, out, _ = run_cli(capsys, "status")
    assert code == 0
    assert out.splitlines()[-1] == (
        "last result:   failed (INTERNAL): "
        "URL_ERROR-ERROR_OTHER. Original HTTP response code number = 500"
    )


def test_status_of_a_job_that_never_ran(
    stand_in: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in.jobs[NAME] = job_json(lastAttemptTime=None, status=None)
    code, out, _ = run_cli(capsys, "status")
    assert code == 0
    assert out.splitlines()[-2:] == ["last attempt:  never", "last result:   no attempt yet"]


def test_run_posts_run_with_an_empty_body(
    stand_in: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in.jobs[NAME] = job_json()
    code, out, _ = run_cli(capsys, "run")
    assert code == 0
    assert [(m, p, b) for m, p, _q, b in stand_in.requests] == [("POST", f"{PATH}:run", {})]
    assert out.startswith(f"Started {JOB}: the refresh is running;")
    assert "state:         ENABLED" in out


def test_pause_then_resume(stand_in: StandIn, capsys: pytest.CaptureFixture[str]) -> None:
    stand_in.jobs[NAME] = job_json()
    code, out, _ = run_cli(capsys, "pause")
    assert code == 0
    assert out.splitlines()[0] == (
        f"Paused {JOB}: no morning refresh until 'rbm-analytics schedule resume'."
    )
    assert "state:         PAUSED" in out
    assert "next run:      none (paused)" in out

    code, out, _ = run_cli(capsys, "status")
    assert "state:         PAUSED" in out

    code, out, _ = run_cli(capsys, "resume")
    assert code == 0
    assert out.splitlines()[0] == f"Resumed {JOB}."
    assert "state:         ENABLED" in out
    assert "next run:      2026-11-27 06:00:00 UTC" in out
    assert [(m, p, b) for m, p, _q, b in stand_in.requests] == [
        ("POST", f"{PATH}:pause", {}),
        ("GET", PATH, None),
        ("POST", f"{PATH}:resume", {}),
    ]


def test_requests_carry_only_the_rest_transport_query(
    stand_in: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    """The job name travels in the path; the query only asks for numeric enums."""
    stand_in.jobs[NAME] = job_json()
    run_cli(capsys, "status")
    run_cli(capsys, "run")
    assert [unquote(q) for _m, _p, q, _b in stand_in.requests] == [
        "$alt=json;enum-encoding=int",
        "$alt=json;enum-encoding=int",
    ]


def test_missing_job_names_it_and_exits_1(
    stand_in: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "status", "--job", "nightly")
    assert code == 1
    assert out == ""
    assert err.strip() == (
        f"rbm-analytics schedule status: job 'nightly' not found in project '{PROJECT}', "
        f"location '{LOCATION}' (projects/{PROJECT}/locations/{LOCATION}/jobs/nightly); "
        "check --job, --location and --project"
    )
    assert [(m, p) for m, p, _q, _b in stand_in.requests] == [
        ("GET", f"/v1/projects/{PROJECT}/locations/{LOCATION}/jobs/nightly")
    ]


def test_job_location_and_project_options(
    stand_in: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "projects/other-proj/locations/europe-west1/jobs/my-refresh"
    stand_in.jobs[other] = job_json(name=other)
    code, out, _ = run_cli(
        capsys, "pause", "--job", "my-refresh", "--location", "europe-west1",
        "--project", "other-proj",
    )  # fmt: skip
    assert code == 0
    code, out, _ = run_cli(capsys, "status", "--job", other)
    assert code == 0
    assert f"job:           {other}" in out
    assert [(m, p) for m, p, _q, _b in stand_in.requests] == [
        ("POST", f"/v1/{other}:pause"),
        ("GET", f"/v1/{other}"),
    ]


def test_permission_denied_says_which_role_is_needed(
    stand_in: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in.forbidden.add(NAME)
    code, _, err = run_cli(capsys, "run")
    assert code == 1
    assert f"permission denied on {NAME}" in err
    assert "roles/cloudscheduler.jobRunner" in err


def test_without_a_project_the_cli_says_so(
    stand_in: StandIn, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    code, _, err = run_cli(capsys, "status")
    assert code == 1
    assert "GOOGLE_CLOUD_PROJECT is not set; pass --project" in err
    assert stand_in.requests == []


def test_a_malformed_job_name_is_refused_before_any_call(
    stand_in: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "status", "--job", "projects/p/jobs/x")
    assert code == 1
    assert "not a job id or projects/P/locations/L/jobs/J name" in err
    assert stand_in.requests == []


def test_unknown_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["schedule", "delete"])
    assert exc.value.code == 2
    assert "invalid choice: 'delete'" in capsys.readouterr().err


def test_cli_defaults_match_what_infra_deploys() -> None:
    tf = hcl.load()
    assert tf.resource("google_cloud_scheduler_job", "refresh")["name"] == (
        "${var.name_prefix}-refresh"
    )
    assert f"{tf.default('name_prefix')}-refresh" == scheduler.DEFAULT_JOB
    assert tf.default("region") == scheduler.DEFAULT_LOCATION
