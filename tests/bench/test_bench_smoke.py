"""A small run of every benchmark: they run, and print well-formed measurement lines.

Benchmarks compare against baselines on a shared machine; their targets are
reported by ``make bench``, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import REPO_ROOT

KEYS = {"name", "value", "unit", "baseline", "ratio", "target", "meets"}


def test_bench_smoke_prints_every_measurement() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    names = {m["name"] for m in lines}
    assert {
        "ingest.handler_cpu_per_event",
        "ingest.events_per_s_16_clients",
        "ingest.events_per_s_32_clients",
        "ingest.sharded_writes_per_s",
        "ingest.sharded_write_cpu_us",
        "ingest.serving_stack_cpu_per_request",
        "ingest.cpu_per_event_16_clients",
        "ingest.client_cpu_per_batch_write",
        "ingest.client_cpu_per_batch_get",
        "ingest.latency_p50_at_half_max",
        "ingest.latency_p99_at_half_max",
        "ingest.sentlog_records_per_s",
        "ingest.relay_latency_p50",
        "ingest.relay_latency_p99",
        "refresh.first_run_documents_per_s",
        "refresh.morning_run_s",
        "refresh.unchanged_run_s",
        "refresh.morning_with_8x_history_s",
        "refresh.backlog_10x_peak_rss_mb",
        "export.rows_per_s",
        "export.long_peak_rss_growth_mb",
        "stack.startup_s",
        "stack.simulate_events_per_s",
        "stack.stop_s",
        "coldstart.ingest_modules",
        "coldstart.ingest_import_cpu_ms",
        "coldstart.export_modules",
        "coldstart.refresh_modules",
    } <= names
    for m in lines:
        assert set(m) == KEYS, m
        assert m["value"] > 0, m
        if m["baseline"] is not None:
            assert (
                m["ratio"] == round(m["value"] / m["baseline"], 3)
                or abs(m["ratio"] - m["value"] / m["baseline"]) < 0.01
            ), m
