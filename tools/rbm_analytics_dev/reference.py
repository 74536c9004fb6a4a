"""The daily metrics in plain Python, straight from their definitions.

This is the one ground truth: the integration tests compare the refresh's
SQL with it, and the simulator's ``Truth`` (which the end-to-end and
load tests compare the whole stack with) is computed by it. So it shares no
code with the production package it checks: it has its own 8-day rule
(``cutoff``), its own durations and its own percentile. Written for
obviousness, not speed: no date window beyond the ones the definitions name,
so a bounded scan in the SQL that cuts something off shows up as a difference.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

WINDOW_DAYS = 8
# A user message opens a wait unless the conversation's previous message is
# the user's own and at most this old.
LOOKBACK = timedelta(days=30)


@dataclass(frozen=True)
class AgentMsg:
    message_id: str
    agent: str
    user: str
    sent: datetime
    delivered: datetime | None  # the earliest DELIVERED receipt
    read: datetime | None  # the earliest READ receipt


@dataclass(frozen=True)
class UserMsg:
    message_id: str
    agent: str
    user: str
    at: datetime
    kind: str
    postback: str | None


@dataclass(frozen=True)
class Typing:
    agent: str
    user: str
    at: datetime


def cutoff(d: date, window: int = WINDOW_DAYS) -> datetime:
    """The 8-day rule: something attributed to date d counts only before this instant."""
    return datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=window)


def nearest_rank(samples: Sequence[int | float], p: int) -> int | float:
    """The ceil(p * n / 100)-th smallest of the n samples (never interpolated)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1]


def milliseconds(later: datetime, earlier: datetime) -> int:
    """Whole milliseconds from ``earlier`` to ``later``, truncated."""
    return (later - earlier) // timedelta(milliseconds=1)


KINDS = {
    "text": "user_text",
    "file": "user_files",
    "location": "user_locations",
    "suggestion_reply": "suggestion_replies",
    "suggestion_action": "suggestion_actions",
}
COUNTS = (
    "sent", "delivered", "read", "typing_events", "user_messages", "user_text", "user_files",
    "user_locations", "suggestion_replies", "suggestion_actions", "reads_with_reply",
    "agent_responses", "read_to_reply_sum_ms", "agent_response_sum_ms", "recipients",
    "responders",
)  # fmt: skip
DURATIONS = (
    "read_to_reply_avg_s", "read_to_reply_p50_s", "agent_response_avg_s",
    "agent_response_p50_s", "agent_response_p90_s",
)  # fmt: skip


def empty_row() -> dict[str, Any]:
    """A (date, agent) with nothing: counts 0, durations None."""
    row: dict[str, Any] = dict.fromkeys(COUNTS, 0)
    row.update(dict.fromkeys(DURATIONS))
    return row


@dataclass
class Expected:
    metrics: dict[tuple[date, str], dict[str, Any]]
    postbacks: dict[tuple[date, str, str | None, str], int]
    samples: dict[tuple[date, str, str], list[int]]  # milliseconds


def expected(
    agent_msgs: Iterable[AgentMsg],
    user_msgs: Iterable[UserMsg],
    typing: Iterable[Typing],
    dates: set[date] | None = None,
    window: int = WINDOW_DAYS,
) -> Expected:
    """daily_metrics, daily_postbacks and response_samples for ``dates`` (None: every date)."""
    agent_msgs, user_msgs = list(agent_msgs), list(user_msgs)

    def wanted(d: date) -> bool:
        return dates is None or d in dates

    rows: dict[tuple[date, str], dict[str, Any]] = defaultdict(empty_row)
    # recipients / responders: the distinct users behind each (date, agent).
    reach = period_reach(agent_msgs, user_msgs, "day")
    samples: dict[tuple[date, str, str], list[int]] = defaultdict(list)
    postbacks: dict[tuple[date, str, str | None, str], int] = defaultdict(int)

    # A conversation is (agent, user): its messages on one timeline, ordered
    # by time, an agent message before a user message at the same instant.
    timeline: dict[tuple[str, str], list[tuple[datetime, int, str]]] = defaultdict(list)
    for m in agent_msgs:
        timeline[(m.agent, m.user)].append((m.sent, 0, m.message_id))
    for u in user_msgs:
        timeline[(u.agent, u.user)].append((u.at, 1, u.message_id))
    for events in timeline.values():
        events.sort()

    # sent / delivered / read and read_to_reply, by the agent message's sent date.
    for m in agent_msgs:
        d = m.sent.date()
        if not wanted(d):
            continue
        row = rows[(d, m.agent)]
        cut = cutoff(d, window)
        row["sent"] += 1
        row["delivered"] += m.delivered is not None and m.delivered < cut
        if m.read is None or m.read >= cut:
            continue
        row["read"] += 1
        replies = [at for at, side, _ in timeline[(m.agent, m.user)] if side == 1 and m.read <= at]
        if replies and min(replies) < cut:
            row["reads_with_reply"] += 1
            samples[(d, m.agent, "read_to_reply")].append(milliseconds(min(replies), m.read))

    # User messages by kind, postbacks, and agent_response, by the user message's date.
    for u in user_msgs:
        d = u.at.date()
        if not wanted(d):
            continue
        row = rows[(d, u.agent)]
        row["user_messages"] += 1
        row[KINDS[u.kind]] += 1
        if u.kind.startswith("suggestion_"):
            postbacks[(d, u.agent, u.postback, u.kind)] += 1
        events = timeline[(u.agent, u.user)]
        i = events.index((u.at, 1, u.message_id))
        previous = events[i - 1] if i > 0 else None
        opens_wait = previous is None or previous[1] == 0 or u.at - previous[0] > LOOKBACK
        answer = next((e for e in events[i + 1 :] if e[1] == 0), None)
        if opens_wait and answer is not None and answer[0] < cutoff(d, window):
            row["agent_responses"] += 1
            samples[(d, u.agent, "agent_response")].append(milliseconds(answer[0], u.at))

    for t in typing:
        if wanted(t.at.date()):
            rows[(t.at.date(), t.agent)]["typing_events"] += 1

    # Durations: averages from the integer sum of milliseconds, in seconds.
    for (d, agent), row in rows.items():
        row["recipients"], row["responders"] = reach.get((d, agent), (0, 0))
        rr = samples.get((d, agent, "read_to_reply"), [])
        ar = samples.get((d, agent, "agent_response"), [])
        row["read_to_reply_sum_ms"] = sum(rr)
        row["agent_response_sum_ms"] = sum(ar)
        if rr:
            row["read_to_reply_avg_s"] = sum(rr) / len(rr) / 1000
            row["read_to_reply_p50_s"] = nearest_rank(rr, 50) / 1000
        if ar:
            row["agent_response_avg_s"] = sum(ar) / len(ar) / 1000
            row["agent_response_p50_s"] = nearest_rank(ar, 50) / 1000
            row["agent_response_p90_s"] = nearest_rank(ar, 90) / 1000
    return Expected(dict(rows), dict(postbacks), dict(samples))


ALL_AGENTS = "*"


def period_of(d: date, scale: str) -> date:
    """The first day of d's period: itself, the Monday of its ISO week, or the 1st."""
    if scale == "day":
        return d
    if scale == "week":
        return d - timedelta(days=d.weekday())
    if scale == "month":
        return d.replace(day=1)
    raise ValueError(f"unknown scale {scale!r}")


def period_reach(
    agent_msgs: Iterable[AgentMsg],
    user_msgs: Iterable[UserMsg],
    scale: str,
    start: date | None = None,
    end: date | None = None,
) -> dict[tuple[date, str], tuple[int, int]]:
    """(recipients, responders) per (period, agent), and per period for every agent as ``*``.

    recipients: distinct users sent an agent message on the period's days;
    responders: distinct users who sent a user message on them. Only days in
    [start, end] count (None: unbounded), so a period cut by the range holds
    only its days inside it. A (period, agent) with neither is absent.
    """
    sets: dict[tuple[date, str], tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))

    def inside(d: date) -> bool:
        return (start is None or d >= start) and (end is None or d <= end)

    for m in agent_msgs:
        if inside(m.sent.date()):
            for agent in (m.agent, ALL_AGENTS):
                sets[(period_of(m.sent.date(), scale), agent)][0].add(m.user)
    for u in user_msgs:
        if inside(u.at.date()):
            for agent in (u.agent, ALL_AGENTS):
                sets[(period_of(u.at.date(), scale), agent)][1].add(u.user)
    return {key: (len(sent_to), len(heard_from)) for key, (sent_to, heard_from) in sets.items()}
