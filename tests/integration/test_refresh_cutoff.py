"""The 8-day rule end to end: ingest → Firestore → refresh → BigQuery (docs/contract.md §1)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from rbm_analytics.core.timeutil import cutoff

from tests.integration.refresh_support import (
    Traffic,
    metrics_by_key,
    post_refresh,
    table_rows,
    utc,
)

AGENT = "acme-agent"
PHONE = "+12223334444"


def test_seed_example_read_next_day_counts_read_on_day_nine_never(
    ingest_client: Any, bq_dataset: str
) -> None:
    t = Traffic(ingest_client)
    jan1 = date(2026, 1, 1)
    boundary = cutoff(jan1, 8)
    assert boundary == utc(2026, 1, 9)
    t.agent_messages(
        [
            ("m-read-jan2", AGENT, PHONE, utc(2026, 1, 1, 9, 30)),
            ("m-read-jan10", AGENT, PHONE, utc(2026, 1, 1, 9, 31)),
            ("m-last-microsecond", AGENT, PHONE, utc(2026, 1, 1, 9, 32)),
            ("m-at-cutoff", AGENT, PHONE, utc(2026, 1, 1, 9, 33)),
        ]
    )
    t.receipt("READ", "m-read-jan2", AGENT, PHONE, utc(2026, 1, 2, 18, 12))
    t.receipt("READ", "m-read-jan10", AGENT, PHONE, utc(2026, 1, 10, 8))
    t.receipt("READ", "m-last-microsecond", AGENT, PHONE, boundary - timedelta(microseconds=1))
    t.receipt("READ", "m-at-cutoff", AGENT, PHONE, boundary)
    # DELIVERED follows the same rule; the second one arrives before its sent record.
    t.receipt("DELIVERED", "m-read-jan2", AGENT, PHONE, utc(2026, 1, 1, 9, 30, 1))
    t.receipt("DELIVERED", "m-late", AGENT, PHONE, utc(2026, 1, 8, 23, 59, 59))
    t.agent_messages([("m-late", AGENT, PHONE, utc(2026, 1, 1, 23, 59, 59))])

    summary = post_refresh({"start": "2026-01-01", "end": "2026-01-01"})

    assert summary["dates"] == ["2026-01-01"]
    assert summary["documents_read"] == 5
    row = metrics_by_key(bq_dataset)[("2026-01-01", AGENT)]
    assert (row["sent"], row["delivered"], row["read"]) == (5, 2, 2)
    mirror = {r["message_id"]: r for r in table_rows(bq_dataset, "agent_messages")}
    assert mirror["m-at-cutoff"]["read_at"] == boundary  # kept in the mirror, not counted
    assert mirror["m-late"]["delivered_at"] == utc(2026, 1, 8, 23, 59, 59)
