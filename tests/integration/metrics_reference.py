"""docs/contract.md §3's daily metrics, in plain Python, straight from the definitions.

Written for obviousness, not speed: every metric loops over all the data,
with no date windows beyond the ones the definitions name, so a bounded scan
in the SQL that cuts something off shows up as a difference.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rbm_analytics_dev.reference import nearest_rank

WINDOW_DAYS = 8
LOOKBACK = timedelta(days=30)


@dataclass(frozen=True)
class AgentMsg:
    message_id: str
    agent: str
    user: str
    sent: datetime
    delivered: datetime | None
    read: datetime | None


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
    return datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=window)


def milliseconds(later: datetime, earlier: datetime) -> int:
    """Whole milliseconds from ``earlier`` to ``later``, truncated."""
    return (later - earlier) // timedelta(milliseconds=1)


@dataclass
class Expected:
    metrics: dict[tuple[date, str], dict[str, Any]]
    postbacks: dict[tuple[date, str, str | None, str], int]
    samples: dict[tuple[date, str, str], list[int]]  # milliseconds


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
    "agent_responses", "read_to_reply_sum_ms", "agent_response_sum_ms",
)  # fmt: skip


def expected(
    agent_msgs: list[AgentMsg],
    user_msgs: list[UserMsg],
    typing: list[Typing],
    dates: set[date],
    window: int = WINDOW_DAYS,
) -> Expected:
    rows: dict[tuple[date, str], dict[str, Any]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    samples: dict[tuple[date, str, str], list[int]] = defaultdict(list)
    postbacks: dict[tuple[date, str, str | None, str], int] = defaultdict(int)

    # sent / delivered / read and read_to_reply, by the agent message's sent date.
    for m in agent_msgs:
        d = m.sent.date()
        if d not in dates:
            continue
        row = rows[(d, m.agent)]
        cut = cutoff(d, window)
        row["sent"] += 1
        row["delivered"] += m.delivered is not None and m.delivered < cut
        if m.read is not None and m.read < cut:
            row["read"] += 1
            replies = [
                u.at
                for u in user_msgs
                if (u.agent, u.user) == (m.agent, m.user) and m.read <= u.at < cut
            ]
            if replies:
                row["reads_with_reply"] += 1
                samples[(d, m.agent, "read_to_reply")].append(milliseconds(min(replies), m.read))

    # A conversation's timeline: agent messages before user messages at equal times.
    timeline: dict[tuple[str, str], list[tuple[datetime, int, str]]] = defaultdict(list)
    for m in agent_msgs:
        timeline[(m.agent, m.user)].append((m.sent, 0, m.message_id))
    for u in user_msgs:
        timeline[(u.agent, u.user)].append((u.at, 1, u.message_id))
    for events in timeline.values():
        events.sort()

    for u in user_msgs:
        d = u.at.date()
        if d not in dates:
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
        if t.at.date() in dates:
            rows[(t.at.date(), t.agent)]["typing_events"] += 1

    for (d, agent), row in rows.items():
        rr = samples.get((d, agent, "read_to_reply"), [])
        ar = samples.get((d, agent, "agent_response"), [])
        row["read_to_reply_sum_ms"] = sum(rr)
        row["read_to_reply_avg_s"] = sum(rr) / len(rr) / 1000 if rr else None
        row["read_to_reply_p50_s"] = nearest_rank(rr, 50) / 1000 if rr else None
        row["agent_response_sum_ms"] = sum(ar)
        row["agent_response_avg_s"] = sum(ar) / len(ar) / 1000 if ar else None
        row["agent_response_p50_s"] = nearest_rank(ar, 50) / 1000 if ar else None
        row["agent_response_p90_s"] = nearest_rank(ar, 90) / 1000 if ar else None
    return Expected(dict(rows), dict(postbacks), dict(samples))
