"""Run ``rbm-analytics serve`` the way ``make run`` does, as a subprocess on free ports."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from rbm_analytics_dev.local import emulators
from rbm_analytics_dev.local.stack import DEFAULT_PORTS, LOCAL_PROJECT

READY_LINE = "local stack is up"


class ServeProcess:
    """One ``rbm-analytics serve`` with its own data dir and ports (no demo by default)."""

    def __init__(
        self, data_dir: Path, ports: dict[str, int], *extra: str, demo: bool = False
    ) -> None:
        self.data_dir = data_dir
        self.ports = ports
        cli = Path(sys.executable).parent / "rbm-analytics"
        argv = [str(cli), "serve", "--data-dir", str(data_dir), *extra]
        if not demo:
            argv.append("--no-demo")
        for name, port in ports.items():
            argv += [f"--{name.replace('_', '-')}-port", str(port)]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own group, like a terminal's foreground job
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.startup_s = 0.0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"serve exited early:\n{self.output()}")
            if READY_LINE in line:
                self.startup_s = time.monotonic() - self.started
                return
        raise AssertionError(f"serve not ready after {timeout_s}s:\n{self.output()}")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self, timeout_s: float = 120) -> int:
        """SIGTERM, as a service manager or ``kill`` sends it."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def kill_everything(self, pids: list[int]) -> None:
        """Last resort after a failed test: nothing of ours may outlive it."""
        for pid in [self.proc.pid, *pids]:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"


def free_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(DEFAULT_PORTS):
        ports = {name: emulators.free_port() for name in DEFAULT_PORTS}
    return ports


def alive(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
    return out


def firestore_count(host: str, collection: str, where: dict[str, Any] | None = None) -> int:
    """Documents in ``collection`` (optionally ``field == value``), via the REST API."""
    query: dict[str, Any] = {"from": [{"collectionId": collection}]}
    if where:
        ((field, value),) = where.items()
        query["where"] = {
            "fieldFilter": {
                "field": {"fieldPath": field},
                "op": "EQUAL",
                "value": {"stringValue": value},
            }
        }
    body = json.dumps(
        {
            "structuredAggregationQuery": {
                "structuredQuery": query,
                "aggregations": [{"alias": "n", "count": {}}],
            }
        }
    ).encode()
    req = urllib.request.Request(
        f"http://{host}/v1/projects/{LOCAL_PROJECT}/databases/(default)/documents:runAggregationQuery",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        result = json.loads(resp.read())
    return int(result[0]["result"]["aggregateFields"]["n"]["integerValue"])


def http(method: str, url: str, body: bytes | None = None, timeout_s: float = 300) -> Any:
    req = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def bigquery_rows(port: int, sql: str) -> list[dict[str, Any]]:
    """Rows of ``sql`` from the stack's BigQuery emulator."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(
        project=LOCAL_PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{port}"},
    )
    try:
        return [dict(row.items()) for row in client.query(sql).result()]
    finally:
        client.close()
