"""A refresh over the same data writes the same bytes, whatever happens in between.

Refresh twice over unchanged data, then once more after 30 % of the events
were delivered again (at-least-once delivery): every column of every daily
table must be identical, byte for byte (only refreshed_at, the run's time,
may differ). Floating-point sums would fail this (their result depends on the
order rows are added in); durations are summed as integer milliseconds.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import date
from typing import Any

from rbm_analytics.core.tables import DAILY_TABLES, table_defs

from tests.integration import scenario
from tests.integration.refresh_support import Traffic, post_refresh, table_rows

FIRST_DAY = date(2026, 5, 4)
SEED = 5042026


def _bytes(dataset: str) -> dict[str, list[tuple[str, ...]]]:
    """Each daily table's rows as the exact text of every value but refreshed_at, sorted."""
    out = {}
    for table in DAILY_TABLES:
        columns = [c for c in table_defs()[table].columns if c != "refreshed_at"]
        rows = table_rows(dataset, table)
        out[table] = sorted(tuple(repr(r[c]) for c in columns) for r in rows)
    return out


def test_reruns_and_redeliveries_write_identical_rows(ingest_client: Any, bq_dataset: str) -> None:
    print(f"seed={SEED}")
    sc = scenario.build(SEED, FIRST_DAY, days=10, phones_per_agent=2)
    traffic = Traffic(ingest_client)
    scenario.push(sc, traffic)
    window = {"start": sc.first_day.isoformat(), "end": sc.last_day.isoformat()}

    post_refresh(window)
    first = _bytes(bq_dataset)
    assert first["daily_metrics"] and first["response_samples"], "the scenario produced no rows"
    durations = [r for r in table_rows(bq_dataset, "daily_metrics") if r["agent_responses"] > 1]
    assert durations, "averages over several samples must be part of the comparison"

    post_refresh(window)
    assert _bytes(bq_dataset) == first

    rng = random.Random(SEED)
    replayed = rng.sample(sc.posts, k=len(sc.posts) * 3 // 10)
    scenario.push(dataclasses.replace(sc, posts=replayed), traffic)
    post_refresh(window)
    assert _bytes(bq_dataset) == first
