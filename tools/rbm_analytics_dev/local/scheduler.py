"""A local stand-in for Cloud Scheduler: starts the morning refresh on a cron schedule.

Like the Cloud Scheduler job that infra/ deploys, it fires at each firing time
of the schedule in ``Etc/UTC``. In the cloud that job starts an execution of
the refresh job (Cloud Run, ``refresh_tasks`` tasks); here its target is the
local stand-in of that job (``JobTarget``: N task processes of one execution,
``local/job.py``), or any HTTP endpoint it POSTs a JSON body to
(``HttpTarget``, as Cloud Scheduler's HTTP targets do). A scheduled run gets
the default (``{}``: the morning's dates, today in UTC). It also serves a
small HTTP API on loopback:

    GET  /      JSON status: schedule, target, next run, the last run's result
    POST /run   fire now and wait for the result; an optional JSON body
                ({"run_date": ...} or {"start": ..., "end": ...}) replaces the
                default; answers with the run's status and result (for the
                job: 200 when every task succeeded, 500 when one failed, 400
                for a body that names no valid dates)

and the part of the Cloud Scheduler v1 REST API that ``rbm-analytics
schedule`` uses, for the job infra/ deploys (``.../jobs/rbm-analytics-refresh``
in ``us-central1``), so with ``CLOUD_SCHEDULER_EMULATOR_HOST`` pointing here
the same command works locally:

    GET  /v1/projects/P/locations/L/jobs/J           the Job
    POST /v1/projects/P/locations/L/jobs/J:run       fire now (in the background)
    POST /v1/projects/P/locations/L/jobs/J:pause     no scheduled runs
    POST /v1/projects/P/locations/L/jobs/J:resume    scheduled runs again

Runs never overlap: a manual run during a scheduled one waits for it. Unlike
Cloud Scheduler, whose attempt ends once ``jobs.run`` has started the
execution, an attempt here waits for the job's tasks and records how they
ended, so the status shows the refresh's own result.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from rbm_analytics.core.config import Settings
from rbm_analytics.core.errors import ConfigError, InvalidInput
from rbm_analytics.core.timeutil import today_utc
from rbm_analytics.refresh.plan import plan_from_body

from rbm_analytics_dev.local.cron import Cron
from rbm_analytics_dev.local.job import LocalJob, job_args

REFRESH_TIMEOUT_S = 900.0
MAX_BODY = 64 * 1024
# The job infra/ deploys: <name_prefix>-refresh in <region>, with their defaults.
JOB_ID = "rbm-analytics-refresh"
JOB_LOCATION = "us-central1"
# google.rpc.Code of an attempt, from the HTTP status of the refresh's answer
# (Google's standard mapping); 0 = the target could not be reached (or the
# job's tasks could not be started).
_RPC_CODES = {200: 0, 400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 499: 1,
              500: 13, 501: 12, 503: 14, 504: 4, 0: 14}  # fmt: skip
# The REST transport asks for enums as numbers ($alt=json;enum-encoding=int).
_STATE_NUMBERS = {"ENABLED": 1, "PAUSED": 2}
_POST = 1
# A job execution's result as the attempt's status: every task succeeded, or not.
JOB_OK, JOB_FAILED = 200, 500


@dataclass(frozen=True)
class RunResult:
    started_at: str
    trigger: str  # "schedule" or "manual"
    status: int  # HTTP status of the refresh; 0 when it could not be reached
    body: str
    seconds: float
    attempt_at: datetime | None = None

    @property
    def response(self) -> Any:
        """The answer as JSON, or its text when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return self.body[:2000]

    @property
    def job(self) -> dict[str, Any] | None:
        """The refresh job's summary when this run was an execution of the job."""
        parsed = self.response
        return parsed if isinstance(parsed, dict) and "per_task" in parsed else None

    def to_json(self) -> dict[str, Any]:
        parsed = self.response
        return {
            "started_at": self.started_at,
            "trigger": self.trigger,
            "status": self.status,
            "response": parsed,
            "seconds": round(self.seconds, 3),
        }


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def post_json(url: str, body: bytes, timeout_s: float) -> tuple[int, bytes]:
    """POST ``body`` as JSON; raises OSError when the target cannot be reached."""
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
    try:
        conn.request(
            "POST", parts.path or "/", body=body, headers={"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    except http.client.HTTPException as exc:
        raise OSError(str(exc)) from exc
    finally:
        conn.close()


class RunTarget(Protocol):
    """What the scheduler fires: ``fire`` answers (status, body) like an HTTP target."""

    @property
    def name(self) -> str:
        """The target as the status shows it."""

    @property
    def description(self) -> str:
        """The Cloud Scheduler job's description."""

    @property
    def http_uri(self) -> str | None:
        """The URI the v1 Job shows; None: the scheduler's own ``POST /run``."""

    @property
    def deadline_s(self) -> float | None:
        """How long an attempt may take (``attemptDeadline``); None: until it ends."""

    def fire(self, body: dict[str, Any]) -> tuple[int, str]:
        """Run once with ``body``; the status (0: not reached) and the answer."""

    def stop(self) -> None:
        """End a run in flight, if the target can."""


class HttpTarget:
    """POSTs the body as JSON to ``url``, as Cloud Scheduler's HTTP targets do."""

    description = "Each morning: recompute the last BACKFILL_DAYS UTC days in BigQuery"
    deadline_s = REFRESH_TIMEOUT_S

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def name(self) -> str:
        return self.url

    @property
    def http_uri(self) -> str | None:
        return self.url

    def fire(self, body: dict[str, Any]) -> tuple[int, str]:
        try:
            status, answer = post_json(self.url, json.dumps(body).encode(), REFRESH_TIMEOUT_S)
        except OSError as exc:
            return 0, f"refresh unreachable at {self.url}: {exc}"
        return status, answer.decode(errors="replace")

    def stop(self) -> None:
        pass  # the request ends with its own timeout


class JobTarget:
    """Starts an execution of the refresh job (``LocalJob``) and waits for its tasks.

    The body takes the refresh function's dates (``run_date``, or ``start``
    and ``end``), checked by the same rules first: a bad body is a 400 naming
    the field (unusable settings a 503), and no task starts. The answer is the
    execution's summary, 200 when every task succeeded and 500 when one failed.
    """

    description = (
        "Each morning: start the refresh job (the last BACKFILL_DAYS UTC days into BigQuery)"
    )
    http_uri = None
    deadline_s = None

    def __init__(self, job: LocalJob) -> None:
        self.job = job

    @property
    def name(self) -> str:
        return f"refresh job: {self.job.tasks} local tasks of {self.job.command}"

    def fire(self, body: dict[str, Any]) -> tuple[int, str]:
        try:
            # The tasks' own settings decide the window and the retention.
            settings = Settings.from_env({**os.environ, **self.job.env})
            plan = plan_from_body(
                json.dumps(body).encode(),
                today=today_utc(),
                window_days=settings.backfill_days,
                mirror_retention_days=settings.mirror_retention_days,
            )
            if plan.intraday:
                raise InvalidInput(
                    "the refresh job takes run_date, or start and end; "
                    "intraday runs are the refresh function's"
                )
        except InvalidInput as exc:
            return 400, json.dumps({"error": exc.message})
        except ConfigError as exc:
            # The tasks would refuse the same settings: none starts.
            return 503, json.dumps({"error": exc.message})
        try:
            result = self.job.run(job_args(body))
        except OSError as exc:
            return 0, f"the refresh job's tasks could not start: {exc}"
        return (JOB_OK if result.ok else JOB_FAILED), json.dumps(result.summary(), default=str)

    def stop(self) -> None:
        self.job.stop()


class LocalScheduler:
    """Fires ``target`` on ``cron``; ``start()`` runs the timer and the HTTP API."""

    def __init__(
        self,
        cron: Cron,
        target: RunTarget,
        port: int,
        *,
        project: str = "demo-rbm-local",
        on_run: Callable[[RunResult], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.job_name = f"projects/{project}/locations/{JOB_LOCATION}/jobs/{JOB_ID}"
        self.paused = False
        self._wake = threading.Event()
        self.cron = cron
        self.target = target
        self.port = port
        self.on_run = on_run
        self._now = now
        self._run_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stopping = threading.Event()
        self.last_run: RunResult | None = None
        self.runs = 0
        self.next_run: datetime | None = None
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- running ----------------------------------------------------------------
    def trigger(self, body: dict[str, Any] | None = None, trigger: str = "manual") -> RunResult:
        """Fire the target now and wait for its answer."""
        with self._run_lock:
            started = time.monotonic()
            attempt_at = self._now()
            started_at = attempt_at.isoformat(timespec="seconds").replace("+00:00", "Z")
            status, text = self.target.fire(body or {})
            result = RunResult(started_at, trigger, status, text, time.monotonic() - started)
            result = replace(result, attempt_at=attempt_at)
        with self._state_lock:
            self.last_run = result
            self.runs += 1
        # A run cut short by the stop is not news to report.
        if self.on_run is not None and not self._stopping.is_set():
            self.on_run(result)
        return result

    def _timer(self) -> None:
        while not self._stopping.is_set():
            due = None if self.paused else self.cron.next_after(self._now())
            with self._state_lock:
                self.next_run = due
            # Sleep in short steps: a laptop that slept, or a clock that
            # jumped, still fires at the right wall-clock time. Pause and
            # resume wake the timer to recompute.
            while not self._stopping.is_set() and (due is None or self._now() < due):
                wait = 30.0 if due is None else min(30.0, (due - self._now()).total_seconds())
                if self._wake.wait(max(0.05, wait)):
                    self._wake.clear()
                    break
            else:
                if not self._stopping.is_set():
                    self.trigger(trigger="schedule")

    def set_paused(self, paused: bool) -> None:
        with self._state_lock:
            self.paused = paused
            if paused:
                self.next_run = None
        self._wake.set()
        if not paused:
            # The timer publishes the next run itself; wait briefly so the
            # answer to a resume already shows it.
            deadline = time.monotonic() + 2
            while self.status()["next_run"] is None and time.monotonic() < deadline:
                time.sleep(0.01)

    def run_in_background(self) -> None:
        """Cloud Scheduler's jobs.run: start an attempt now, answer at once."""
        threading.Thread(target=self.trigger, name="scheduler-run", daemon=True).start()

    def job(self, int_enums: bool) -> dict[str, Any]:
        """This job as Cloud Scheduler v1 returns it."""
        with self._state_lock:
            state = "PAUSED" if self.paused else "ENABLED"
            nxt, last = self.next_run, self.last_run
        job: dict[str, Any] = {
            "name": self.job_name,
            "description": self.target.description,
            "schedule": self.cron.expression,
            "timeZone": "Etc/UTC",
            "state": _STATE_NUMBERS[state] if int_enums else state,
            "httpTarget": {
                "uri": self.target.http_uri or f"{self.url}/run",
                "httpMethod": _POST if int_enums else "POST",
                "headers": {"Content-Type": "application/json"},
                "body": base64.b64encode(b"{}").decode(),
            },
            "status": {},
        }
        if self.target.deadline_s is not None:
            job["attemptDeadline"] = f"{self.target.deadline_s:.0f}s"
        if nxt is not None:
            job["scheduleTime"] = _rfc3339(nxt)
        if last is not None and last.attempt_at is not None:
            job["lastAttemptTime"] = _rfc3339(last.attempt_at)
            code = _RPC_CODES.get(last.status, 2)  # 2: UNKNOWN
            if code:
                summary = last.job
                if summary is not None:
                    message = f"{summary['failed_tasks']} of {summary['tasks']} tasks failed"
                else:
                    message = f"HTTP {last.status}" if last.status else last.body[:200]
                job["status"] = {"code": code, "message": message}
        return job

    def status(self) -> dict[str, Any]:
        with self._state_lock:
            nxt = self.next_run
            return {
                "schedule": self.cron.expression,
                "time_zone": "Etc/UTC",
                "target": self.target.name,
                "state": "PAUSED" if self.paused else "ENABLED",
                "next_run": nxt.isoformat().replace("+00:00", "Z") if nxt else None,
                "runs": self.runs,
                "last_run": self.last_run.to_json() if self.last_run else None,
            }

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> LocalScheduler:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="scheduler-http", daemon=True),
            threading.Thread(target=self._timer, name="scheduler-timer", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        # A job's tasks in flight end with the scheduler, not after it.
        self.target.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for t in self._threads:
            # A refresh in flight holds the timer thread; it is a daemon and
            # must not keep the stack from stopping.
            t.join(timeout=2)
        self._threads = []


def _google_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _handler(scheduler: LocalScheduler) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "rbm-analytics-scheduler"

        def _reply(self, status: int, doc: Any) -> None:
            body = json.dumps(doc, indent=1).encode() + b"\n"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _v1(self) -> bool:
            """Cloud Scheduler v1 routes; False when the path is not one."""
            url = urllib.parse.urlsplit(self.path)
            if not url.path.startswith("/v1/"):
                return False
            name, _, verb = urllib.parse.unquote(url.path).removeprefix("/v1/").partition(":")
            if name != scheduler.job_name:
                self._reply(404, _google_error(404, "NOT_FOUND", f"Job not found: {name}"))
                return True
            if (self.command, verb) == ("GET", ""):
                pass
            elif (self.command, verb) == ("POST", "run"):
                scheduler.run_in_background()
            elif (self.command, verb) in (("POST", "pause"), ("POST", "resume")):
                scheduler.set_paused(verb == "pause")
            else:
                self._reply(404, _google_error(404, "NOT_FOUND", f"no method {verb!r}"))
                return True
            int_enums = "enum-encoding=int" in urllib.parse.unquote(url.query)
            self._reply(200, scheduler.job(int_enums))
            return True

        def do_GET(self) -> None:
            if self._v1():
                return
            if self.path.split("?")[0] != "/":
                self._reply(404, {"error": "GET / for the status, POST /run to fire now"})
                return
            self._reply(200, scheduler.status())

        def do_POST(self) -> None:
            if self._v1():
                return
            if self.path.split("?")[0] != "/run":
                self._reply(404, {"error": "POST /run to fire the refresh now"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, {"error": f"body over {MAX_BODY} bytes"})
                return
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError:
                self._reply(400, {"error": "body is not valid JSON"})
                return
            if not isinstance(body, dict):
                self._reply(400, {"error": "body must be a JSON object"})
                return
            result = scheduler.trigger(body)
            # The run's own status; 502 when its target could not be reached.
            self._reply(result.status or 502, result.to_json())

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the stack prints one line per run instead

    return Handler
