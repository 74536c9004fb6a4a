"""Memory stays flat: three years of fifty agents stream through the real handler
with about the same peak as one week.

Each export runs in a fresh process (the real handler, the real emulator), and
its peak resident memory is compared. Streaming costs about two result pages
(~16 MB here, the same for one, two or three years); holding the long
export's rows instead costs ~50 MB more, and its raw pages more still.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from rbm_analytics.export.query import METRICS

from tests.daily_rows import insert_varied_daily
from tests.export_data import Warehouse
from tests.support import REPO_ROOT

AGENTS = 50
START, END = "2023-01-01", "2025-12-31"  # 1,096 days, the longest range allowed
MAX_EXTRA_PEAK_BYTES = 32 * 1024 * 1024


def _fill(warehouse: Warehouse) -> None:
    """One INSERT … SELECT writes every (date, agent) row with varying values."""
    sql = insert_varied_daily(warehouse.table("daily_metrics"), START, END, AGENTS)
    warehouse.client.query(sql).result()


def _stream(start: str, end: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.integration.export.stream_export", start, end,
         ",".join(METRICS)],
        cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    report: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    report["extra"] = report["peak_rss_after"] - report["peak_rss_before"]
    return report


# A memory bound, so a soak test (make soak); `make bench` records the same
# figure, and test_export_streaming.py proves the streaming in make test.
@pytest.mark.soak
def test_three_years_of_fifty_agents_streams_in_flat_memory(warehouse: Warehouse) -> None:
    _fill(warehouse)
    short = _stream("2025-12-22", "2025-12-28")
    long = _stream(START, END)
    for name, r in (("one week", short), ("three years", long)):
        print(
            f"\n{name}: {r['rows']} rows x {len(METRICS) + 2} columns, {r['bytes'] / 1e6:.2f} MB "
            f"in {r['seconds']:.2f} s ({r['rows'] / r['seconds']:,.0f} rows/s); peak RSS "
            f"{r['peak_rss_before'] / 1e6:.1f} MB before, {r['peak_rss_after'] / 1e6:.1f} MB "
            f"after (+{r['extra'] / 1e6:.1f} MB)"
        )
    assert short["rows"] == 7 * AGENTS
    assert long["rows"] == 1096 * AGENTS
    assert long["bytes"] > 100 * short["bytes"]
    assert long["peak_rss_after"] - short["peak_rss_after"] < MAX_EXTRA_PEAK_BYTES
