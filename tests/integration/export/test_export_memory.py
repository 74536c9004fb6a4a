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

from tests.export_data import Warehouse
from tests.support import REPO_ROOT

AGENTS = 50
START, END = "2023-01-01", "2025-12-31"  # 1,096 days, the longest range allowed
MAX_EXTRA_PEAK_BYTES = 32 * 1024 * 1024


def _fill(warehouse: Warehouse) -> None:
    """One INSERT … SELECT writes every (date, agent) row with varying values."""
    table = warehouse.table("daily_metrics")
    warehouse.client.query(
        f"""
        INSERT INTO `{table}` (date, agent_id, sent, delivered, read, typing_events,
          user_messages, user_text, user_files, user_locations, suggestion_replies,
          suggestion_actions, reads_with_reply, read_to_reply_avg_s, read_to_reply_p50_s,
          agent_responses, agent_response_avg_s, agent_response_p50_s, agent_response_p90_s,
          refreshed_at)
        SELECT d, FORMAT('agent-%02d', a),
          100 + a, 90 + a, 80 + a, 5, 40, 30, 3, 2, 3, 2, 20,
          12.5 + a, 10.25, 15, 30.5, 25.0, 90.75, TIMESTAMP '2026-01-01 06:00:00+00'
        FROM UNNEST(GENERATE_DATE_ARRAY(DATE '{START}', DATE '{END}')) AS d
        CROSS JOIN UNNEST(GENERATE_ARRAY(1, {AGENTS})) AS a
        """
    ).result()


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
