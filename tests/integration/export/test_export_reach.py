"""Reach over weeks and months: distinct users over the period's own days.

Seeded traffic where users hear from (and write to) several agents on several
days; the export's week and month rows, the all-agents rows, period_reach and
the analysts' table functions must equal the plain-Python reference, for
periods cut by the range too. Daily values do not add up: the test checks
that summing them would have been wrong on this data.

The emulator does not enforce authorization, so these tests prove the
function's logic and wiring; that export cannot read the mirror itself is
Terraform's (tests/infra).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from google.cloud import bigquery
from rbm_analytics.core.tables import ensure_tables, reach_dataset, table_defs
from rbm_analytics_dev.reference import (
    ALL_AGENTS,
    AgentMsg,
    UserMsg,
    expected,
    period_of,
    period_reach,
)

from tests.export_data import Warehouse, daily

AGENTS = ("acme", "bravo", "cobalt")
FIRST, LAST = date(2026, 1, 1), date(2026, 2, 14)
REACH = ("recipients", "responders")
# Wednesday to Tuesday across a month end: both end weeks and both months are cut.
CLIPPED = (date(2026, 1, 7), date(2026, 2, 3))


def _traffic(seed: int) -> tuple[list[AgentMsg], list[UserMsg]]:
    """Few users, many days: each user is reached on several days and by several agents."""
    rng = random.Random(seed)
    users = [f"user-{i:02d}" for i in range(12)]
    agent_msgs, user_msgs = [], []
    day = FIRST
    while day <= LAST:
        for agent in AGENTS:
            for user in rng.sample(users, rng.randint(0, 5)):
                at = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                    seconds=rng.randrange(86400)
                )
                mid = f"m{len(agent_msgs)}"
                agent_msgs.append(AgentMsg(mid, agent, user, at, None, None))
                if rng.random() < 0.5:  # a reply, sometimes the next day
                    reply = at + timedelta(hours=rng.choice([1, 20]))
                    uid = f"u{len(user_msgs)}"
                    user_msgs.append(UserMsg(uid, agent, user, reply, "text", None))
        day += timedelta(days=1)
    return agent_msgs, user_msgs


@pytest.fixture
def seeded(warehouse: Warehouse) -> tuple[list[AgentMsg], list[UserMsg]]:
    """The mirror and daily_metrics for the traffic; the reach dataset and functions."""
    seed = 20260214
    print(f"seed={seed}")
    agent_msgs, user_msgs = _traffic(seed)
    path = f"{warehouse.project}.{warehouse.dataset}"
    for name in ("agent_messages", "user_messages"):
        warehouse.client.create_table(table_defs()[name].table(path))
    stamp = "2026-03-01T00:00:00Z"
    warehouse.load("agent_messages", [
        {"message_id": m.message_id, "agent_id": m.agent, "user_key": m.user,
         "sent_at": m.sent.isoformat(), "sent_date": str(m.sent.date()),
         "content_type": "text", "updated_at": stamp}
        for m in agent_msgs
    ])  # fmt: skip
    warehouse.load("user_messages", [
        {"message_id": u.message_id, "agent_id": u.agent, "user_key": u.user,
         "event_at": u.at.isoformat(), "event_date": str(u.at.date()), "kind": u.kind,
         "updated_at": stamp}
        for u in user_msgs
    ])  # fmt: skip
    # The daily rows as the refresh writes them (its SQL is held to the same
    # reference by the refresh tests).
    want = expected(agent_msgs, user_msgs, [])
    warehouse.load("daily_metrics", [
        daily(d, agent, sent=row["sent"], user_messages=row["user_messages"],
              user_text=row["user_text"], recipients=row["recipients"],
              responders=row["responders"])
        for (d, agent), row in sorted(want.metrics.items())
    ])  # fmt: skip
    ensure_tables(warehouse.client, warehouse.project, warehouse.dataset, "US", reach=True)
    return agent_msgs, user_msgs


def _reference_rows(
    agent_msgs: list[AgentMsg], user_msgs: list[UserMsg], start: date, end: date, scale: str
) -> list[dict[str, Any]]:
    """The export's rows (every period x every agent, then '*'), zero-filled, from the reference."""
    reach = period_reach(agent_msgs, user_msgs, scale, start, end)
    periods = sorted({period_of(start + timedelta(days=i), scale)
                      for i in range((end - start).days + 1)})  # fmt: skip
    agents = sorted({a for _, a in reach} - {ALL_AGENTS})
    return [
        {"date": str(p), "agent_id": a, **dict(zip(REACH, reach.get((p, a), (0, 0)), strict=True))}
        for p in periods
        for a in [ALL_AGENTS, *agents]
    ]


def _export(client: Any, start: date, end: date, scale: str) -> list[dict[str, Any]]:
    resp = client.get("/", query_string={"start": start, "end": end, "scale": scale, "total": "1",
                                         "metrics": ",".join(REACH), "format": "json"})  # fmt: skip
    assert resp.status_code == 200, resp.data
    return [{k: r[k] for k in ("date", "agent_id", *REACH)} for r in resp.get_json()]


@pytest.mark.parametrize("scale", ["week", "month", "day"])
@pytest.mark.parametrize("span", [(FIRST, LAST), CLIPPED], ids=["whole", "clipped"])
def test_the_export_counts_each_user_once_per_period(
    export_client: Any,
    seeded: tuple[list[AgentMsg], list[UserMsg]],
    scale: str,
    span: tuple[date, date],
) -> None:
    agent_msgs, user_msgs = seeded
    want = _reference_rows(agent_msgs, user_msgs, *span, scale)
    assert _export(export_client, *span, scale) == want
    if scale == "day":
        return
    # Users came back on several days of a period: adding daily values up
    # would have counted them again, so the comparison above tells apart
    # distinct-over-the-period from a sum.
    daily_sum: dict[tuple[str, str], int] = defaultdict(int)
    for (d, agent), (recipients, _) in period_reach(agent_msgs, user_msgs, "day", *span).items():
        daily_sum[(str(period_of(d, scale)), agent)] += recipients
    assert any(daily_sum[(w["date"], w["agent_id"])] > w["recipients"] for w in want)
    # And users heard from several agents: the all-agents row is no sum either.
    by_agent: dict[str, int] = defaultdict(int)
    for w in want:
        if w["agent_id"] != ALL_AGENTS:
            by_agent[w["date"]] += w["responders"]
    assert any(by_agent[w["date"]] > w["responders"] for w in want if w["agent_id"] == ALL_AGENTS)


def test_one_agents_export_keeps_the_all_agents_row_for_everyone(
    export_client: Any, seeded: tuple[list[AgentMsg], list[UserMsg]]
) -> None:
    agent_msgs, user_msgs = seeded
    query = {"start": CLIPPED[0], "end": CLIPPED[1], "scale": "month", "agent": "bravo",
             "total": "1", "metrics": ",".join(REACH), "format": "json"}  # fmt: skip
    resp = export_client.get("/", query_string=query)
    assert resp.status_code == 200, resp.data
    got = [{k: r[k] for k in ("date", "agent_id", *REACH)} for r in resp.get_json()]
    want = _reference_rows(agent_msgs, user_msgs, *CLIPPED, "month")
    assert got == [w for w in want if w["agent_id"] in (ALL_AGENTS, "bravo")]


def _call(warehouse: Warehouse, function: str, start: date, end: date, scale: str) -> list[Any]:
    config = bigquery.QueryJobConfig(query_parameters=[
        bigquery.ScalarQueryParameter("start", "DATE", start),
        bigquery.ScalarQueryParameter("end", "DATE", end),
        bigquery.ScalarQueryParameter("scale", "STRING", scale),
    ])  # fmt: skip
    rows = warehouse.client.query(
        f"SELECT date, agent_id, recipients, responders FROM `{function}`(@start, @end, @scale) "
        "ORDER BY date, agent_id",
        job_config=config,
    ).result()
    return [{"date": str(r["date"]), "agent_id": r["agent_id"], "recipients": r["recipients"],
             "responders": r["responders"]} for r in rows]  # fmt: skip


@pytest.mark.parametrize("scale", ["week", "month", "day"])
def test_period_reach_and_the_analysts_functions_equal_the_reference(
    warehouse: Warehouse, seeded: tuple[list[AgentMsg], list[UserMsg]], scale: str
) -> None:
    agent_msgs, user_msgs = seeded
    want = _reference_rows(agent_msgs, user_msgs, *CLIPPED, scale)
    # period_reach: only (period, agent) pairs with anyone reached.
    reach = f"{warehouse.project}.{reach_dataset(warehouse.dataset)}.period_reach"
    assert _call(warehouse, reach, *CLIPPED, scale) == [
        w for w in want if w["recipients"] or w["responders"]
    ]
    pooled = [w for w in want if w["agent_id"] == ALL_AGENTS]
    assert _call(warehouse, warehouse.table("agent_periods"), *CLIPPED, scale) == [
        w for w in want if w["agent_id"] != ALL_AGENTS
    ]
    assert _call(warehouse, warehouse.table("all_agents_periods"), *CLIPPED, scale) == pooled


def test_the_reach_function_is_authorized_on_the_main_dataset(
    warehouse: Warehouse, seeded: tuple[list[AgentMsg], list[UserMsg]]
) -> None:
    """What the cloud checks and the emulator does not: the main dataset's
    access list names the function (Terraform's google_bigquery_dataset_access)."""
    shared = warehouse.client.get_dataset(f"{warehouse.project}.{warehouse.dataset}")
    routines = [e.entity_id for e in shared.access_entries if e.entity_type == "routine"]
    if not routines:
        pytest.skip("emulator: a dataset's access list is not kept")
    home = reach_dataset(warehouse.dataset)
    assert routines == [
        {"projectId": warehouse.project, "datasetId": home, "routineId": "period_reach"}
    ]
