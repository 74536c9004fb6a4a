"""Export benchmarks: three years x fifty agents at day scale, streamed by the served function.

rows/s     the served export (functions-framework on gunicorn, CSV over HTTP)
           vs reading the same rows straight from BigQuery with the client
memory     the served process's peak RSS during the long export vs during a
           one-week export, each in a fresh process (target: within +50 MB)
"""

from __future__ import annotations

import http.client
import os
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import psutil
from google.cloud import bigquery
from rbm_analytics.core.clients import make_bigquery_client
from rbm_analytics.core.config import Settings
from rbm_analytics.core.tables import ensure_tables
from rbm_analytics.export.query import METRICS
from rbm_analytics_dev.local import emulators

from tests.daily_rows import insert_varied_daily

from . import harness
from .harness import PROJECT, measurement, note

AGENTS = 50
START, END = "2023-01-01", "2025-12-31"
WEEK_START, WEEK_END = "2025-12-22", "2025-12-28"


def _fill(client: bigquery.Client, dataset: str, agents: int, start: str, end: str) -> None:
    table = f"{PROJECT}.{dataset}.daily_metrics"
    sql = insert_varied_daily(table, start, end, agents, refreshed_at="CURRENT_TIMESTAMP()")
    client.query(sql).result()


class _PeakRss:
    """Samples a process tree's resident memory every 10 ms."""

    def __init__(self, pid: int) -> None:
        self._proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self) -> int:
        procs = [self._proc, *self._proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(0.01)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _export(port: int, start: str, end: str) -> tuple[int, float]:
    """Stream one CSV export; (rows, seconds)."""
    query = urllib.parse.urlencode(
        {"start": start, "end": end, "scale": "day", "metrics": ",".join(METRICS)}
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request("GET", f"/?{query}")
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()[:500]
    lines = 0
    while chunk := resp.read(65536):
        lines += chunk.count(b"\r\n")
    conn.close()
    return lines - 1, time.perf_counter() - started


def _served_export(env: dict[str, str], tmp: Path, start: str, end: str) -> tuple[int, float, int]:
    """A fresh served export: (rows, seconds, peak RSS growth in bytes during the export)."""
    with harness.served("export", env, tmp) as fn:
        assert fn.proc is not None
        _export(fn.port, end, end)  # warm-up: imports, client, first query
        with _PeakRss(fn.proc.pid) as rss:
            before = rss.current()
            rows, seconds = _export(fn.port, start, end)
        return rows, seconds, rss.peak - before


def export_scale(agents: int, start: str, end: str) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bq = emulators.bigquery_emulator(
            emulators.free_port(), emulators.free_port(), PROJECT, tmp / "bq",
            log_path=tmp / "bq.log",
        ).start()  # fmt: skip
        try:
            dataset = f"bench_export_{uuid.uuid4().hex[:6]}"
            env = {"GOOGLE_CLOUD_PROJECT": PROJECT, "BIGQUERY_EMULATOR_HOST": bq.host,
                   "BQ_DATASET": dataset}  # fmt: skip
            os.environ["BIGQUERY_EMULATOR_HOST"] = bq.host
            client = make_bigquery_client(Settings(project=PROJECT, bq_dataset=dataset))
            ensure_tables(client, PROJECT, dataset, "US")
            _fill(client, dataset, agents, start, end)

            started = time.perf_counter()
            raw_rows = sum(
                1 for _ in client.query(
                    f"SELECT * FROM `{PROJECT}.{dataset}.daily_metrics` ORDER BY date, agent_id"
                ).result(page_size=10_000)
            )  # fmt: skip
            raw_rate = raw_rows / (time.perf_counter() - started)
            note(f"raw BigQuery read: {raw_rows} rows, {raw_rate:.0f} rows/s")

            week_rows, _, week_peak = _served_export(env, tmp, WEEK_START, WEEK_END)
            rows, seconds, long_peak = _served_export(env, tmp, start, end)
            note(f"one week: {week_rows} rows, +{week_peak / 1e6:.1f} MB; "
                 f"long: {rows} rows in {seconds:.1f}s, +{long_peak / 1e6:.1f} MB")  # fmt: skip
        finally:
            os.environ.pop("BIGQUERY_EMULATOR_HOST", None)
            bq.stop()
    measurement(
        "export.rows_per_s", rows / seconds, "rows/s", raw_rate,
        f"{rows} rows ({agents} agents, {start} … {end}, day scale, every metric) as CSV "
        "over HTTP; baseline: the same rows read straight from BigQuery", None,
    )  # fmt: skip
    measurement(
        "export.long_peak_rss_growth_mb", long_peak / 1e6, "MB", week_peak / 1e6,
        "peak RSS growth during the long export within +50 MB of a one-week export's",
        long_peak - week_peak <= 50e6,
    )  # fmt: skip


def run(smoke: bool) -> None:
    if smoke:
        export_scale(3, "2025-10-01", END)
    else:
        export_scale(AGENTS, START, END)
