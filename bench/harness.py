"""What the benchmarks share: the measurement line, emulators, served functions, load."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rbm_analytics_dev.local import emulators

REPO = Path(__file__).resolve().parents[1]
PROJECT = "demo-rbm-bench"
CLIENT_TOKEN = "bench-client-token"
AGENT_KEY = "bench-agent-key-0123456789abcdef012"  # 32+ characters
PHONE_KEY = "bench-phone-hash-key-0123456789abcdef"  # 32+ bytes


@dataclass(frozen=True)
class Measurement:
    name: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    target: str
    meets: bool | None

    def emit(self) -> Measurement:
        # The real stdout: the suites run with sys.stdout pointed at stderr,
        # so the product's own log lines never mix with measurements.
        print(json.dumps(asdict(self)), file=sys.__stdout__, flush=True)
        return self


def measurement(
    name: str,
    value: float,
    unit: str,
    baseline: float | None,
    target: str,
    meets: bool | None,
    ratio: float | None = None,
) -> Measurement:
    if ratio is None and baseline and round(baseline, 3):
        # From the printed (rounded) numbers, so every line is self-consistent
        # even when the baseline is small (0.0696 MB prints as 0.07).
        ratio = round(value, 3) / round(baseline, 3)
    return Measurement(
        name,
        round(value, 3),
        unit,
        None if baseline is None else round(baseline, 3),
        None if ratio is None else round(ratio, 3),
        target,
        meets,
    ).emit()


def note(message: str) -> None:
    """Progress for the person watching; stdout carries only measurement lines."""
    print(message, file=sys.stderr, flush=True)


def base_env(firestore_host: str) -> dict[str, str]:
    return {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "FIRESTORE_EMULATOR_HOST": firestore_host,
        "RBM_CLIENT_TOKENS": CLIENT_TOKEN,
        "AGENT_API_KEYS": AGENT_KEY,
        "PHONE_HASH_KEY": PHONE_KEY,
    }


@contextmanager
def firestore(tmp: Path) -> Iterator[emulators.ManagedProcess]:
    proc = emulators.firestore_emulator(emulators.free_port(), log_path=tmp / "firestore.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@contextmanager
def served(
    target: str, env: dict[str, str], tmp: Path, source: Path = REPO / "functions" / "main.py"
) -> Iterator[emulators.ManagedProcess]:
    """A function served as deployed: functions-framework on gunicorn."""
    port = emulators.free_port()
    proc = emulators.ManagedProcess(
        name=f"{target} function",
        argv=[
            str(REPO / ".venv" / "bin" / "functions-framework"),
            "--source",
            str(source),
            "--target",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        port=port,
        ready_url=f"http://127.0.0.1:{port}/__ready__",
        env={**env, "PYTHONUNBUFFERED": "1"},
        log_path=tmp / f"{target}.log",
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]
    # Per request, in input order: (HTTP status or 0 for a connection error,
    # milliseconds from sending to the answer).
    outcomes: list[tuple[int, float]]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        rank = max(1, -(-int(p * len(ordered)) // 100))
        return ordered[min(rank, len(ordered)) - 1]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)


Req = tuple[str, dict[str, str], bytes]


def http_load(
    port: int, requests: Sequence[Req], concurrency: int, rate: float | None = None
) -> LoadResult:
    """Send ``requests`` over keep-alive connections from ``concurrency`` threads.

    With ``rate`` the load is open-loop: request i is due at start + i/rate,
    and its latency counts from when it was due, so queueing shows.
    """
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    outcomes: list[tuple[int, float]] = [(0, 0.0)] * len(requests)
    next_index = [0]
    start = time.perf_counter()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= len(requests):
                break
            due = start + i / rate if rate else time.perf_counter()
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            path, headers, body = requests[i]
            sent = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                status = 0
            done = time.perf_counter()
            elapsed = (done - due) * 1000
            with lock:
                outcomes[i] = (status, (done - sent) * 1000)
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return LoadResult(len(requests), time.perf_counter() - start, latencies, statuses, outcomes)


def threaded(fn: Callable[[int], Any], items: int, concurrency: int) -> float:
    """Run fn(i) for i in range(items) from ``concurrency`` threads; seconds taken."""
    lock = threading.Lock()
    next_index = [0]

    def worker() -> None:
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= items:
                return
            fn(i)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def concurrently(
    fn: Callable[[int], Awaitable[Any]],
    items: int,
    concurrency: int,
    loop: asyncio.AbstractEventLoop,
) -> float:
    """Await fn(i) for i in range(items) from ``concurrency`` coroutines on
    ``loop`` (the served function's way: one loop, requests as coroutines);
    seconds taken."""
    indexes = iter(range(items))

    async def worker() -> None:
        for i in indexes:
            await fn(i)

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    start = time.perf_counter()
    loop.run_until_complete(main())
    return time.perf_counter() - start


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process and its descendants have used so far.

    Unlike a rate, CPU time per operation hardly moves when neighbours load
    the machine, so small differences (a few per cent) can be measured.
    """
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def smoke() -> bool:
    return os.environ.get("BENCH_SMOKE") == "1"
