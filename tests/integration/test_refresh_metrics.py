"""Every daily metric, end to end, against the plain-Python reference.

Seeded random traffic goes through the real ingest handler into the
Firestore emulator; refresh writes BigQuery (emulator); the tables read back
must equal the reference column by column. Reproduce a failure with
REFRESH_TEST_SEED=<seed printed below>.
"""

from __future__ import annotations

import os
import random
import time
from datetime import date, timedelta
from typing import Any

import pytest
from rbm_analytics_dev.reference import expected

from tests.integration import scenario
from tests.integration.refresh_support import Traffic, assert_tables_match, post_refresh

FIRST_DAY = date(2026, 3, 1)


@pytest.fixture
def seed() -> int:
    value = int(os.environ.get("REFRESH_TEST_SEED") or random.randrange(1 << 30))
    print(f"REFRESH_TEST_SEED={value}")
    return value


def test_random_traffic_matches_the_reference(
    ingest_client: Any, bq_dataset: str, seed: int
) -> None:
    sc = scenario.build(seed, FIRST_DAY)
    early_receipts = scenario.push(sc, Traffic(ingest_client))
    print("scenario", scenario.summary(sc), "receipts before their sent record:", early_receipts)
    assert early_receipts > 0

    started = time.perf_counter()
    result = post_refresh({"start": FIRST_DAY.isoformat(), "end": sc.last_day.isoformat()})
    print("refresh", result, f"wall {time.perf_counter() - started:.2f}s")

    dates = {FIRST_DAY + timedelta(days=i) for i in range(sc.days)}
    want = expected(sc.agent_msgs, sc.user_msgs, sc.typing, dates)
    # The scenario must exercise what it claims to, or the comparison proves little.
    assert sum(r["reads_with_reply"] for r in want.metrics.values()) > 5
    assert sum(r["agent_responses"] for r in want.metrics.values()) > 5
    assert sum(r["read"] for r in want.metrics.values()) < sum(
        1 for m in sc.agent_msgs if m.read is not None and m.sent.date() in dates
    ), "some reads must fall after the cutoff"
    assert result["documents_read"] == len(sc.agent_msgs) + len(sc.user_msgs) + len(sc.typing)
    assert_tables_match(bq_dataset, want)

    # Recomputing part of the range later gives the same numbers: the SQL's
    # bounded scans (look-back before `start`, cutoff after `end`) cut nothing off.
    day = FIRST_DAY + timedelta(days=rng_day(seed))
    post_refresh({"start": day.isoformat(), "end": day.isoformat()})
    post_refresh({"run_date": (FIRST_DAY + timedelta(days=15)).isoformat()})
    assert_tables_match(bq_dataset, want)


def rng_day(seed: int) -> int:
    """A day inside the scenario, chosen by the seed."""
    return random.Random(seed).randrange(1, 20)
