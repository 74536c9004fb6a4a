"""The agent-response and read-to-reply rules at their edges, one conversation each.

Decisions the README records: at equal times an agent message comes before a
user message; a previous user message exactly 30 days back still counts as
previous (no new wait), 30 days and a microsecond back does not; answers and
replies count only before the cutoff of the date they are attributed to.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.integration.refresh_support import Traffic, metrics_by_key, post_refresh, table_rows, utc

AGENT = "acme-agent"
DAY = date(2026, 4, 10)
T0 = utc(2026, 4, 10, 9)


def _samples(dataset: str, metric: str) -> list[float]:
    return sorted(
        r["seconds"]
        for r in table_rows(dataset, "response_samples")
        if r["metric"] == metric and r["date"] == DAY
    )


def test_wait_opening_ties_and_look_back(ingest_client: Any, bq_dataset: str) -> None:
    t = Traffic(ingest_client)
    s = timedelta(seconds=1)
    # user …01: first contact opens a wait; a second user message does not; one answer.
    t.user_message("u1", AGENT, "+15550000001", T0, "text")
    t.user_message("u2", AGENT, "+15550000001", T0 + 5 * s, "text")
    t.agent_messages([("a1", AGENT, "+15550000001", T0 + 10.25 * s)])
    # user …02: agent and user at the same microsecond: the agent message is the
    # previous message, so the user message opens a wait answered by the next one.
    t.agent_messages([("a2", AGENT, "+15550000002", T0), ("a3", AGENT, "+15550000002", T0 + 7 * s)])
    t.user_message("u3", AGENT, "+15550000002", T0, "location")
    # user …03: previous user message exactly 30 days back: still the previous message.
    t.user_message("u4-old", AGENT, "+15550000003", T0 - timedelta(days=30), "text")
    t.user_message("u4", AGENT, "+15550000003", T0, "text")
    t.agent_messages([("a4", AGENT, "+15550000003", T0 + 3 * s)])
    # user …04: 30 days and 1 µs back: too old to count, so a new wait opens.
    t.user_message("u5-old", AGENT, "+15550000004", T0 - timedelta(days=30, microseconds=1), "text")
    t.user_message("u5", AGENT, "+15550000004", T0, "file")
    t.agent_messages([("a5", AGENT, "+15550000004", T0 + 2 * s)])
    # user …05: answered one microsecond after the cutoff of DAY: not an agent response.
    edge = utc(2026, 4, 18)
    t.user_message("u6", AGENT, "+15550000005", T0, "text")
    t.agent_messages([("a6", AGENT, "+15550000005", edge + timedelta(microseconds=1))])
    # user …06: read, then a reply at the READ's own microsecond (counts), and a
    # read whose only reply comes after the cutoff (does not).
    t.agent_messages([("r1", AGENT, "+15550000006", T0), ("r2", AGENT, "+15550000007", T0)])
    t.receipt("READ", "r1", AGENT, "+15550000006", T0 + 60 * s)
    t.user_message("u7", AGENT, "+15550000006", T0 + 60 * s, "suggestion_reply", "yes")
    t.receipt("READ", "r2", AGENT, "+15550000007", T0 + 60 * s)
    t.user_message("u8", AGENT, "+15550000007", edge, "text")

    post_refresh({"start": DAY.isoformat(), "end": DAY.isoformat()})

    # u1 (10.25 s), u3 (7 s), u5 (2 s); not u2, u4, u6; u7 is answered by nothing.
    assert _samples(bq_dataset, "agent_response") == [2.0, 7.0, 10.25]
    assert _samples(bq_dataset, "read_to_reply") == [0.0]
    row = metrics_by_key(bq_dataset)[(DAY.isoformat(), AGENT)]
    assert row["agent_responses"] == 3
    assert row["agent_response_p50_s"] == 7.0
    assert row["agent_response_p90_s"] == 10.25
    assert row["agent_response_avg_s"] == (2.0 + 7.0 + 10.25) / 3
    assert (row["read"], row["reads_with_reply"], row["read_to_reply_p50_s"]) == (2, 1, 0.0)
    assert (row["user_messages"], row["user_text"], row["user_files"]) == (7, 4, 1)
    assert (row["user_locations"], row["suggestion_replies"]) == (1, 1)
