"""The traffic simulator: seeded plans, realistic shapes, and a ground truth
that follows docs/contract.md §1 and §3."""

from __future__ import annotations

import itertools
import json
import statistics
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from functools import cache

import pytest
from rbm_analytics.core.timeutil import counts_for, datetime_to_us, us_to_datetime, utc_date
from rbm_analytics.ingest import rbm
from rbm_analytics_dev.local import simulate as sim
from rbm_analytics_dev.local.simulate import Event, PlanConfig, compute_truth, plan_backfill

SEED = 20260101
END = datetime_to_us(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
US = 1_000_000


@cache
def big_plan() -> sim.TrafficPlan:
    """Long enough for the lag tails to cross the 8-day cutoff."""
    print(f"seed {SEED}")
    return plan_backfill(PlanConfig(agents=2, users=150, days=30, end_us=END, seed=SEED))


def small(seed: int = SEED, end_us: int = END) -> sim.TrafficPlan:
    return plan_backfill(PlanConfig(agents=2, users=20, days=3, end_us=end_us, seed=seed))


def bodies(plan: sim.TrafficPlan) -> list[str]:
    return [json.dumps(r.body_json(), sort_keys=True) for r in plan.requests]


# -- determinism --------------------------------------------------------------
def test_same_flags_give_the_same_traffic() -> None:
    assert bodies(small()) == bodies(small())
    assert small().truth().to_json() == small().truth().to_json()


def test_another_seed_gives_other_traffic() -> None:
    assert bodies(small(seed=SEED)) != bodies(small(seed=SEED + 1))


def test_another_end_time_gives_other_message_ids() -> None:
    a, b = small(), small(end_us=END + 3600 * US)
    assert not {e.message_id for e in a.events} & {e.message_id for e in b.events}


# -- what is sent is what ingest accepts ----------------------------------------
def test_every_payload_parses_as_rbm_traffic() -> None:
    plan = small()
    kinds: Counter[str] = Counter()
    # Received at the plan's end, with the default retention: every time is possible.
    arrival = {"phone_key": b"k", "received_us": END, "retention_days": 90}
    for req in plan.requests:
        if req.route == "agent-messages":
            records = rbm.parse_agent_messages(req.body_json(), **arrival)
            assert len(records) == len(req.deliveries) <= sim.MAX_BATCH
            assert len({r.agent_id for r in records}) == 1  # one agent backend per batch
            kinds["sent"] += len(records)
        else:
            data = json.dumps(req.body_json()).encode()
            record = rbm.parse_webhook_payload(data, **arrival)
            kinds[getattr(record, "kind", None) or getattr(record, "receipt", None) or "event"] += 1
    assert kinds["sent"] > 0 and kinds["DELIVERED"] > 0 and kinds["READ"] > 0


def test_user_messages_of_every_kind_with_postbacks_from_the_agents_suggestions() -> None:
    plan = big_plan()
    kinds = Counter(e.kind for e in plan.events)
    for kind in (*sim.USER_KINDS, "IS_TYPING", "sent", "DELIVERED", "READ"):
        assert kinds[kind] > 0, kind
    suggestions = {
        (s.kind, s.postback) for t in (*sim.CAMPAIGNS, *sim.RESPONSES) for s in t.suggestions
    }
    for e in plan.events:
        if e.kind == "suggestion_reply":
            assert ("reply", e.postback) in suggestions
        elif e.kind == "suggestion_action":
            assert ("action", e.postback) in suggestions
        elif e.kind == "file":
            assert e.payload["userFile"]["payload"]["mimeType"] in {m for m, _, _ in sim.FILE_TYPES}
    # Conversations started by users: a user message with no agent message before it.
    first_by_conv: dict[tuple[str, str], Event] = {}
    for e in plan.events:
        if e.kind in ("sent", *sim.USER_KINDS):
            first_by_conv.setdefault((e.agent_id, e.phone), e)
    assert any(e.kind in sim.USER_KINDS for e in first_by_conv.values())


def test_nothing_happens_after_the_end() -> None:
    plan = small()
    assert max(e.at_us for e in plan.events) <= END
    start = END - 3 * 86_400 * US
    assert min(e.at_us for e in plan.events) >= start - sim.MAX_TYPING_LEAD_S * US


# -- realistic shapes ------------------------------------------------------------
def lags(plan: sim.TrafficPlan, kind: str) -> tuple[list[float], int]:
    sent = {e.message_id: e for e in plan.events if e.kind == "sent"}
    out = [
        (e.at_us - sent[e.message_id].at_us) / US
        for e in plan.events
        if e.kind == kind and e.message_id in sent
    ]
    return sorted(out), len(sent)


def test_delivery_lags_are_mostly_seconds_with_a_tail_of_days_and_some_never() -> None:
    delivered, n_sent = lags(big_plan(), "DELIVERED")
    assert statistics.median(delivered) < 10
    assert sum(lag < 600 for lag in delivered) / len(delivered) > 0.8  # most within minutes
    assert sum(lag > 86_400 for lag in delivered) > 0  # a tail over days
    assert any(lag > 8 * 86_400 for lag in delivered)  # some past the 8-day cutoff
    never = 1 - len(delivered) / n_sent
    assert 0.01 < never < 0.15  # some never arrive (and recent ones have not yet)


def test_reads_follow_deliveries_and_lag_minutes_to_days() -> None:
    plan = big_plan()
    delivered = {e.message_id: e.at_us for e in plan.events if e.kind == "DELIVERED"}
    reads = [e for e in plan.events if e.kind == "READ"]
    assert all(e.message_id in delivered and e.at_us >= delivered[e.message_id] for e in reads)
    read_lags, _ = lags(plan, "READ")
    assert 1 < statistics.median(read_lags) < 3600
    assert any(lag > 8 * 86_400 for lag in read_lags)


def test_agent_answers_within_seconds_mostly() -> None:
    truth = big_plan().truth()
    p50s = [r["agent_response_p50_s"] for r in truth.daily.values() if r["agent_response_p50_s"]]
    assert statistics.median(p50s) < 10


def test_duplicates_and_late_deliveries() -> None:
    plan = big_plan()
    copies = [d for r in plan.requests for d in r.deliveries]
    dup_share = sum(d.copy > 0 for d in copies) / len(plan.events)
    assert 0.01 < dup_share < 0.06
    # Reordered: some webhook events arrive after an event that happened later.
    order = [d.event.at_us for d in copies if d.event.kind != "sent"]
    assert any(b < a for a, b in itertools.pairwise(order))
    # Receipts can arrive before the sent record they refer to.
    position = {}
    for i, d in enumerate(copies):
        position.setdefault((d.event.kind, d.event.message_id), i)
    early = [
        d
        for d in copies
        if d.event.kind == "DELIVERED"
        and position[("DELIVERED", d.event.message_id)]
        < position.get(("sent", d.event.message_id), 0)
    ]
    assert early


def test_sent_log_batches_hold_at_most_500_of_one_agent() -> None:
    def event(i: int, agent: str) -> Event:
        return Event(END, "sent", agent, "+15550000001", f"m{i}", {"agentId": agent})

    deliveries = [sim.Delivery(END, event(i, "a")) for i in range(1203)]
    deliveries += [sim.Delivery(END, event(i, "b")) for i in range(1203, 1210)]
    requests = list(sim.coalesce(deliveries))
    assert [len(r.deliveries) for r in requests] == [500, 500, 203, 7]
    assert {r.route for r in requests} == {"agent-messages"}


def test_live_plan_yields_requests_in_time_order_within_its_window() -> None:
    config = PlanConfig(agents=2, users=30, end_us=END, seed=SEED)
    plan = sim.LivePlan(config, start_us=END, rate=40, stop_us=END + 120 * US)
    requests = list(plan.requests())
    times = [r.deliver_us for r in requests]
    assert times == sorted(times)
    lead = sim.MAX_TYPING_LEAD_S * US  # IS_TYPING may precede its conversation
    assert END - lead <= times[0] and times[-1] <= END + 120 * US
    # About the asked rate: 40/s for 2 minutes, loosely (receipt tails start later).
    assert 40 * 120 * 0.3 < len(requests) < 40 * 120 * 2


# -- ground truth ------------------------------------------------------------------
def test_truth_applies_the_8_day_rule() -> None:
    plan = big_plan()
    truth = plan.truth()
    sent = {e.message_id: e for e in plan.events if e.kind == "sent"}
    receipts = {(e.kind, e.message_id): e.at_us for e in plan.events if e.kind in sim.RECEIPTS}
    expected: Counter[tuple[date, str, str]] = Counter()
    excluded = 0
    for mid, e in sent.items():
        day = utc_date(e.at_us)
        expected[(day, e.agent_id, "sent")] += 1
        for kind, column in (("DELIVERED", "delivered"), ("READ", "read")):
            at = receipts.get((kind, mid))
            if at is None:
                continue
            if counts_for(day, us_to_datetime(at), 8):
                expected[(day, e.agent_id, column)] += 1
            else:
                excluded += 1
    assert excluded > 0, "the plan should exercise the cutoff"
    for (day, agent), row in truth.daily.items():
        for column in ("sent", "delivered", "read"):
            assert row[column] == expected[(day, agent, column)], (day, agent, column)
    assert sum(r["sent"] for r in truth.daily.values()) == len(sent)


def test_truth_counts_user_activity_by_its_own_date_and_kind() -> None:
    plan = big_plan()
    truth = plan.truth()
    for kind, column in (
        ("text", "user_text"),
        ("file", "user_files"),
        ("IS_TYPING", "typing_events"),
    ):
        by_day = Counter((utc_date(e.at_us), e.agent_id) for e in plan.events if e.kind == kind)
        assert {k: truth.daily[k][column] for k in by_day} == dict(by_day)
    assert sum(truth.postbacks.values()) == sum(
        1 for e in plan.events if e.kind in ("suggestion_reply", "suggestion_action")
    )


def conversation(*items: tuple[str, str, float]) -> list[Event]:
    """Events of one conversation: (kind, message id, hours after Jan 1 00:00 UTC)."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Event(
            datetime_to_us(base + timedelta(hours=h)),
            kind,  # type: ignore[arg-type]
            "acme",
            "+15550000001",
            mid,
            {},
            "yes" if kind == "suggestion_reply" else None,
        )
        for kind, mid, h in items
    ]


def test_truth_reads_with_reply_and_agent_responses_by_the_spec() -> None:
    events = conversation(
        ("sent", "m1", 9),
        ("DELIVERED", "m1", 9.01),
        ("READ", "m1", 10),
        ("suggestion_reply", "u1", 10.5),  # 30 min after READ: a reply; opens a wait
        ("text", "u2", 10.6),  # previous is the user's own: no new wait
        ("sent", "m2", 11),  # answers u1 after 30 minutes
        ("READ", "m2", 11.5),  # no user message follows: not a read with reply
        ("text", "u3", 24 * 9 + 1),  # Jan 10: after m2's cutoff (Jan 9 00:00); opens a wait
    )
    truth = compute_truth(events, 8)
    jan1 = truth.row(date(2026, 1, 1), "acme")
    assert (jan1["sent"], jan1["delivered"], jan1["read"]) == (2, 1, 2)
    assert jan1["user_messages"] == 2
    assert (jan1["suggestion_replies"], jan1["user_text"]) == (1, 1)
    assert jan1["reads_with_reply"] == 1
    assert jan1["read_to_reply_avg_s"] == pytest.approx(1800)
    assert jan1["agent_responses"] == 1
    assert jan1["agent_response_p90_s"] == pytest.approx(1800)
    jan10 = truth.row(date(2026, 1, 10), "acme")
    assert (jan10["user_messages"], jan10["agent_responses"]) == (1, 0)  # never answered
    assert truth.postbacks == {(date(2026, 1, 1), "acme", "yes", "suggestion_reply"): 1}


def test_a_reply_after_the_cutoff_does_not_count() -> None:
    events = conversation(("sent", "m1", 0), ("READ", "m1", 1), ("text", "u1", 24 * 8 + 1))
    row = compute_truth(events, 8).row(date(2026, 1, 1), "acme")
    assert (row["read"], row["reads_with_reply"], row["read_to_reply_avg_s"]) == (1, 0, None)


def test_invalid_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="agents"):
        PlanConfig(agents=0)
    with pytest.raises(ValueError, match="duplicate_rate"):
        PlanConfig(duplicate_rate=2)
