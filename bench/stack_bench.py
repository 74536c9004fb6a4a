"""Local stack benchmarks: ``rbm-analytics serve`` start-up and stop, and how
fast ``simulate`` pushes realistic traffic through the stack's ingest."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rbm_analytics.core.timeutil import now_us
from rbm_analytics_dev.local import emulators
from rbm_analytics_dev.local.sender import Sender
from rbm_analytics_dev.local.simulate import PlanConfig, plan_backfill
from rbm_analytics_dev.local.stack import DEFAULT_PORTS, local_target

from .harness import measurement, note

READY = "local stack is up"


class Serve:
    """``rbm-analytics serve --no-demo`` on free ports, as ``make run`` starts it."""

    def __init__(self, data_dir: Path) -> None:
        self.ports = {name: emulators.free_port() for name in DEFAULT_PORTS}
        argv = [str(Path(sys.executable).parent / "rbm-analytics"), "serve", "--no-demo"]
        argv += ["--data-dir", str(data_dir)]
        for name, port in self.ports.items():
            argv += [f"--{name.replace('_', '-')}-port", str(port)]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.ready = threading.Event()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if READY in line:
                self.ready.set()

    def wait_ready(self, timeout_s: float = 300) -> float:
        if not self.ready.wait(timeout_s):
            self.proc.kill()
            raise RuntimeError("serve did not start:\n" + "".join(self.output[-30:]))
        return time.monotonic() - self.started

    def stop(self) -> float:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=300)
        return time.monotonic() - started


def run(smoke: bool) -> None:
    agents, users, days = (1, 10, 1) if smoke else (3, 200, 7)
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        serve = Serve(Path(tmp))
        try:
            startup_s = serve.wait_ready()
            note(f"stack ready in {startup_s:.1f}s")
            plan = plan_backfill(
                PlanConfig(agents=agents, users=users, days=days, end_us=now_us(), seed=42)
            )
            target = local_target(f"http://127.0.0.1:{serve.ports['ingest']}")
            # Same run, same stack: a tenth warms ingest's clients up (not
            # measured), the next fifth goes one request at a time (the
            # baseline), the rest on 16 keep-alive connections.
            n = len(plan.requests)
            warm, cut = max(1, n // 10), max(2, n // 10 + n // 5)
            Sender(target, concurrency=4).run(plan.requests[:warm])
            serial = Sender(target, concurrency=1).run(plan.requests[warm:cut])
            parallel = Sender(target, concurrency=16).run(plan.requests[cut:])
            note(f"simulate: {parallel.total_events} events in {parallel.seconds:.1f}s")
        finally:
            stop_s = serve.stop()
    failures = serial.failures + parallel.failures
    measurement(
        "stack.startup_s", startup_s, "s", None,
        "both emulators, three functions and the scheduler answering; < 60 s on 2 cores",
        startup_s < 60,
    )  # fmt: skip
    measurement(
        "stack.simulate_events_per_s",
        parallel.total_events / parallel.seconds,
        "events/s",
        serial.total_events / serial.seconds,
        f"{agents} agents, {users} users, {days} days of simulated traffic through ingest "
        "on 16 connections; baseline: one connection, same run; no failures",
        failures == 0,
    )
    measurement(
        "stack.stop_s", stop_s, "s", None,
        "SIGTERM to every process gone, Firestore saved; < 30 s", stop_s < 30,
    )  # fmt: skip
