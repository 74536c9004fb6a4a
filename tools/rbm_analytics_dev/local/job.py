"""A local stand-in for the Cloud Run refresh job: N task processes of one execution.

In the cloud, an execution of the refresh job runs ``refresh_tasks`` containers
of ``python -m rbm_analytics.refresh.job``, each with ``CLOUD_RUN_TASK_INDEX``,
``CLOUD_RUN_TASK_COUNT`` and the execution's ``CLOUD_RUN_EXECUTION``. Here
``LocalJob.run`` starts the same N tasks as local processes with those
variables over the given environment, one execution id for all of them, waits
for every one, and collects each task's ``refresh task`` log line into one
summary. ``rbm-analytics refresh --tasks N`` and the local scheduler of
``make run`` both start the job through it.

Unlike Cloud Run it does not retry a failed task: the failure is reported
(the task's own output is kept), and the next execution resumes after the
last committed chunk, as a retry would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# infra/'s refresh_tasks: its default and its allowed range (tests/infra
# checks that they agree).
DEFAULT_TASKS = 4
MAX_TASKS = 256
JOB_MODULE = "rbm_analytics.refresh.job"
# The one JSON line each task logs when it ends (see the job module).
TASK_LINE = '"message":"refresh task"'
# The dates a run can be given, as the refresh function's body names them;
# the tasks take them as --run-date / --start / --end.
DATE_FIELDS = ("run_date", "start", "end")
# Cloud Run sends SIGTERM to a stopped task and SIGKILL 10 s later.
STOP_GRACE_S = 10.0


def job_args(dates: Mapping[str, Any]) -> list[str]:
    """The tasks' arguments for ``dates`` (``{"start": "2026-01-01", ...}``; None = not given)."""
    return [
        arg
        for name in DATE_FIELDS
        if dates.get(name) is not None
        for arg in (f"--{name.replace('_', '-')}", str(dates[name]))
    ]


@dataclass(frozen=True)
class TaskResult:
    """One task: its exit status, its ``refresh task`` line, everything it printed."""

    index: int
    exit_code: int
    line: dict[str, Any]
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class JobResult:
    """One execution of the job, every task finished."""

    execution: str
    tasks: tuple[TaskResult, ...]
    seconds: float

    @property
    def failed(self) -> list[TaskResult]:
        return [t for t in self.tasks if not t.ok]

    @property
    def ok(self) -> bool:
        """The execution succeeded: every task did (as Cloud Run judges an execution)."""
        return not self.failed

    @property
    def documents_read(self) -> int:
        return sum(int(t.line.get("documents_read", 0)) for t in self.tasks)

    def summary(self) -> dict[str, Any]:
        """The execution as JSON: totals, which task ran the daily step, each task's line."""
        return {
            "status": "succeeded" if self.ok else "failed",
            "execution": self.execution,
            "tasks": len(self.tasks),
            "failed_tasks": len(self.failed),
            "documents_read": self.documents_read,
            "daily_by_task": [t.index for t in self.tasks if t.line.get("daily")],
            "per_task": [{**t.line, "exit_code": t.exit_code} for t in self.tasks],
            "seconds": round(self.seconds, 3),
        }


def _task_line(index: int, output: str) -> dict[str, Any]:
    """The task's last ``refresh task`` line; a task that died before logging one failed."""
    for raw in reversed(output.splitlines()):
        if TASK_LINE in raw:
            with contextlib.suppress(ValueError):
                line: dict[str, Any] = json.loads(raw)
                return line
    return {"task_index": index, "status": "failed"}


class LocalJob:
    """Runs executions of the refresh job's ``tasks`` tasks as local processes.

    ``env`` is laid over this process's environment, as the stack does for
    the functions; ``cwd`` is where ``python -m`` finds the code (the
    functions' source folder in the stack, so the tasks run the same code as
    the refresh function); ``log_path``, when given, receives every task's
    output after it ends. ``stop()`` ends the tasks of a running execution.
    """

    def __init__(
        self,
        tasks: int,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        if not 1 <= tasks <= MAX_TASKS:
            raise ValueError(f"the refresh job takes 1 to {MAX_TASKS} tasks, not {tasks}")
        self.tasks = tasks
        self.env = dict(env or {})
        self.cwd = cwd
        self.log_path = log_path
        self._lock = threading.Lock()
        self._running: list[subprocess.Popen[bytes]] = []

    @property
    def command(self) -> str:
        return f"python -m {JOB_MODULE}"

    def run(self, args: Sequence[str] = ()) -> JobResult:
        """Start every task with ``args`` and wait for all; OSError when one cannot start."""
        execution = f"local-{uuid.uuid4().hex[:12]}"
        clock = time.perf_counter()
        outputs = [tempfile.TemporaryFile() for _ in range(self.tasks)]  # noqa: SIM115
        procs: list[subprocess.Popen[bytes]] = []
        try:
            with self._lock:
                for index in range(self.tasks):
                    env = {**os.environ, **self.env, "CLOUD_RUN_TASK_INDEX": str(index),
                           "CLOUD_RUN_TASK_COUNT": str(self.tasks),
                           "CLOUD_RUN_EXECUTION": execution}  # fmt: skip
                    # Its own session: a Ctrl-C meant for the caller does not
                    # reach the tasks; the caller ends them (finally, below).
                    procs.append(
                        subprocess.Popen(
                            [sys.executable, "-m", JOB_MODULE, *args],
                            stdout=outputs[index],
                            stderr=subprocess.STDOUT,
                            env=env,
                            cwd=self.cwd,
                            start_new_session=True,
                        )
                    )
                self._running = list(procs)
            for proc in procs:
                proc.wait()
            results = []
            for index, (proc, out) in enumerate(zip(procs, outputs, strict=True)):
                out.seek(0)
                text = out.read().decode(errors="replace")
                results.append(TaskResult(index, proc.returncode, _task_line(index, text), text))
        finally:
            _end(procs)
            with self._lock:
                self._running = []
            for out in outputs:
                out.close()
        result = JobResult(execution, tuple(results), time.perf_counter() - clock)
        self._log(result)
        return result

    def stop(self) -> None:
        """End the tasks of the execution in flight (SIGTERM, then SIGKILL), if any."""
        with self._lock:
            running = list(self._running)
        _end(running)

    def _log(self, result: JobResult) -> None:
        if self.log_path is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as log:
            for task in result.tasks:
                log.write(
                    f"=== execution {result.execution}, task {task.index} of {len(result.tasks)}"
                    f", exit {task.exit_code} ===\n{task.output}"
                )
                if task.output and not task.output.endswith("\n"):
                    log.write("\n")


def _end(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Stop each still running task's process group, as Cloud Run stops a task."""
    live = [p for p in procs if p.poll() is None]
    for proc in live:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in live:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
