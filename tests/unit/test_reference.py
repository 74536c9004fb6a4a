"""The plain-Python reference: independent of the code it checks, and right on the edges."""

from __future__ import annotations

import ast
import inspect
from datetime import UTC, date, datetime, timedelta

from rbm_analytics_dev import reference
from rbm_analytics_dev.reference import AgentMsg, UserMsg, cutoff, expected, nearest_rank


def test_it_imports_nothing_from_the_production_package() -> None:
    tree = ast.parse(inspect.getsource(reference))
    imported = {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert not {m for m in imported if m and m.startswith("rbm_analytics")}, imported


def test_nearest_rank_is_the_ceil_p_n_over_100th_smallest() -> None:
    samples = list(range(10, 0, -1))
    assert nearest_rank(samples, 50) == 5
    assert nearest_rank(samples, 90) == 9
    assert nearest_rank([7], 90) == 7
    assert nearest_rank([1, 2, 3, 4, 5], 90) == 5  # not 4 (floor) nor 4.6 (interpolated)
    assert nearest_rank([1, 2], 50) == 1


def test_the_8_day_rule_and_millisecond_durations() -> None:
    day = date(2026, 1, 1)
    assert cutoff(day) == datetime(2026, 1, 9, tzinfo=UTC)
    sent = datetime(2026, 1, 1, 9, tzinfo=UTC)
    edge = cutoff(day)
    msgs = [
        AgentMsg("a", "acme", "u1", sent, edge - timedelta(microseconds=1), edge),  # read too late
        AgentMsg("b", "acme", "u2", sent, sent, sent + timedelta(microseconds=1500)),
    ]
    replies = [UserMsg("r", "acme", "u2", sent + timedelta(microseconds=3999), "text", None)]
    row = expected(msgs, replies, [], {day}).metrics[(day, "acme")]
    assert (row["sent"], row["delivered"], row["read"]) == (2, 2, 1)
    # READ at +1.5 ms, reply at +3.999 ms: 2.499 ms, truncated to 2 ms.
    assert row["read_to_reply_sum_ms"] == 2 and row["read_to_reply_avg_s"] == 0.002


def test_reach_counts_users_not_messages_and_each_once_per_period() -> None:
    def at(day: int) -> datetime:
        return datetime(2026, 1, day, 12, tzinfo=UTC)

    # u1 hears from acme on Mon 5 and Wed 7 and from bravo on Wed 7; u2 from
    # acme on Sun 11; u3 from acme on Mon 12 (the next ISO week).
    sent = [
        AgentMsg("a", "acme", "u1", at(5), None, None),
        AgentMsg("b", "acme", "u1", at(5), None, None),
        AgentMsg("c", "acme", "u1", at(7), None, None),
        AgentMsg("d", "bravo", "u1", at(7), None, None),
        AgentMsg("e", "acme", "u2", at(11), None, None),
        AgentMsg("f", "acme", "u3", at(12), None, None),
    ]
    replies = [UserMsg("r", "bravo", "u1", at(7), "text", None)]
    rows = expected(sent, replies, []).metrics
    assert rows[(date(2026, 1, 5), "acme")]["recipients"] == 1  # two messages, one user
    assert rows[(date(2026, 1, 7), "bravo")]["responders"] == 1
    week = reference.period_reach(sent, replies, "week")
    monday = date(2026, 1, 5)
    assert week[(monday, "acme")] == (2, 0)  # u1 on two days counts once
    assert week[(monday, "*")] == (2, 1)  # u1 through two agents counts once
    assert week[(date(2026, 1, 12), "acme")] == (1, 0)
    # Clipped to [start, end]: only the period's days inside count.
    clipped = reference.period_reach(sent, replies, "month", date(2026, 1, 6), date(2026, 1, 11))
    assert clipped == {(date(2026, 1, 1), "acme"): (2, 0), (date(2026, 1, 1), "bravo"): (1, 1),
                       (date(2026, 1, 1), "*"): (2, 1)}  # fmt: skip
