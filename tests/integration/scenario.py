"""Seeded random RBM traffic: what happened (for the reference) and the posts
that tell ingest about it (duplicated, shuffled, receipts before sent records)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from rbm_analytics_dev.reference import AgentMsg, Typing, UserMsg, cutoff

from tests.integration.refresh_support import Traffic, utc

KINDS = ("text", "file", "location", "suggestion_reply", "suggestion_action")
POSTBACKS = ("yes", "no", "track_order", None)


@dataclass
class Scenario:
    first_day: date
    days: int
    agent_msgs: list[AgentMsg] = field(default_factory=list)
    user_msgs: list[UserMsg] = field(default_factory=list)
    typing: list[Typing] = field(default_factory=list)
    posts: list[tuple[str, Callable[[Traffic], None] | tuple[str, str, str, datetime]]] = field(
        default_factory=list
    )

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=self.days - 1)


def _lag(rng: random.Random, sent: datetime) -> datetime:
    """A receipt time: often soon, sometimes days later, sometimes right at the cutoff."""
    roll = rng.random()
    if roll < 0.5:
        return sent + timedelta(seconds=rng.uniform(0.5, 3600))
    if roll < 0.8:
        return sent + timedelta(days=rng.uniform(0, 10))
    edge = cutoff(sent.date())
    return edge + rng.choice(
        [-timedelta(microseconds=1), timedelta(0), timedelta(microseconds=1),
         -timedelta(seconds=rng.uniform(1, 600)), timedelta(seconds=rng.uniform(1, 600))]
    )  # fmt: skip


def build(seed: int, first_day: date, days: int = 21, phones_per_agent: int = 4) -> Scenario:
    rng = random.Random(seed)
    sc = Scenario(first_day, days)
    start = utc(first_day.year, first_day.month, first_day.day)
    span = timedelta(days=days)
    agents = ["agent-a", "agent-b", "agent-c"]
    phones = [f"+1555000{n:04d}" for n in range(7)]
    ids = iter(f"{rng.getrandbits(64):016x}{n:05d}" for n in range(10**6))

    def when(base: datetime, spread: timedelta) -> datetime:
        return base + timedelta(microseconds=rng.randrange(int(spread.total_seconds() * 1e6)))

    def agent_message(agent: str, phone: str, sent: datetime) -> None:
        delivered = _lag(rng, sent) if rng.random() < 0.9 else None
        read = None
        if delivered is not None and rng.random() < 0.75:
            read = max(delivered, _lag(rng, sent))
        msg = AgentMsg(next(ids), agent, phone, sent, delivered, read)
        sc.agent_msgs.append(msg)
        record = (msg.message_id, agent, phone, sent)
        sc.posts.append(("sent", record))
        if rng.random() < 0.15:  # the agent backend forwards it twice
            sc.posts.append(("sent", record))
        for kind, at in (("DELIVERED", delivered), ("READ", read)):
            if at is None:
                continue
            copies = [at] + [at + timedelta(seconds=rng.uniform(1, 9e5))] * (rng.random() < 0.2)
            for copy in copies:  # a later duplicate: the earliest must win
                sc.posts.append(
                    (f"receipt:{msg.message_id}", lambda t, k=kind, m=msg.message_id, c=copy:
                        t.receipt(k, m, agent, phone, c))
                )  # fmt: skip

    def user_message(agent: str, phone: str, at: datetime) -> None:
        kind = rng.choice(KINDS)
        postback = rng.choice(POSTBACKS) if kind.startswith("suggestion_") else None
        msg = UserMsg(next(ids), agent, phone, at, kind, postback)
        sc.user_msgs.append(msg)
        for _ in range(2 if rng.random() < 0.15 else 1):
            sc.posts.append(
                ("event", lambda t, m=msg: t.user_message(m.message_id, m.agent, m.user, m.at,
                                                          m.kind, m.postback))
            )  # fmt: skip

    def typing(agent: str, phone: str, at: datetime) -> None:
        event = Typing(agent, phone, at)
        sc.typing.append(event)
        event_id = next(ids)
        for _ in range(2 if rng.random() < 0.15 else 1):
            sc.posts.append(("event", lambda t, e=event_id: t.typing(e, agent, phone, at)))

    for agent in agents:
        for phone in rng.sample(phones, phones_per_agent):
            # A conversation: agent pushes, user answers after reads, agent answers back.
            for _ in range(rng.randint(3, 7)):
                agent_message(agent, phone, when(start, span))
            for _ in range(rng.randint(2, 6)):
                base = rng.choice([m for m in sc.agent_msgs if (m.agent, m.user) == (agent, phone)])
                at = (base.read or base.sent) + timedelta(seconds=rng.uniform(0, 7200))
                if rng.random() < 0.2:
                    at = when(start, span)
                user_message(agent, phone, at)
                if rng.random() < 0.5:
                    typing(agent, phone, at - timedelta(seconds=rng.uniform(1, 30)))
                roll = rng.random()
                if roll < 0.5:  # the agent answers, sometimes after the cutoff
                    agent_message(agent, phone, at + timedelta(seconds=rng.uniform(0.001, 5e5)))
                elif roll < 0.6:  # an answer at the very same microsecond
                    agent_message(agent, phone, at)
                elif roll < 0.7:  # the user sends two in a row
                    user_message(agent, phone, at + timedelta(seconds=rng.uniform(1, 60)))
            if rng.random() < 0.5:  # an older message, around the 30-day look-back
                user_message(agent, phone, start - timedelta(days=rng.uniform(25, 35)))
    rng.shuffle(sc.posts)
    return sc


def push(sc: Scenario, traffic: Traffic) -> int:
    """Post everything in the shuffled order; consecutive sent records go as one batch.

    Returns how many receipts reached ingest before their message's sent record.
    """
    pending: list[tuple[str, str, str, datetime]] = []
    sent: set[str] = set()
    early_receipts = 0
    for kind, item in sc.posts:
        if kind == "sent":
            assert isinstance(item, tuple)
            pending.append(item)
            sent.add(item[0])
            continue
        if kind.startswith("receipt:") and kind.removeprefix("receipt:") not in sent:
            early_receipts += 1
        if pending:
            traffic.agent_messages(pending)
            pending = []
        assert callable(item)
        item(traffic)
    if pending:
        traffic.agent_messages(pending)
    return early_receipts


def summary(sc: Scenario) -> dict[str, Any]:
    return {
        "agent_messages": len(sc.agent_msgs),
        "user_messages": len(sc.user_msgs),
        "typing": len(sc.typing),
        "posts": len(sc.posts),
    }
