"""``total=1``: a row per period for agent ``*``, every agent together."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta
from statistics import mean
from typing import Any

import pytest
from rbm_analytics_dev.reference import nearest_rank

from tests.export_data import Warehouse, daily, parse_csv, sample

AGENTS = ("acme", "bravo", "carol")
START, END = date(2026, 1, 5), date(2026, 2, 8)  # five ISO weeks
METRICS = (
    "sent,read,read_rate,agent_responses,agent_response_avg_s,"
    "agent_response_p50_s,agent_response_p90_s"
)


def _label(scale: str, day: date) -> date:
    if scale == "week":
        return day - timedelta(days=day.weekday())
    if scale == "month":
        return day.replace(day=1)
    return day


def _seed(warehouse: Warehouse) -> dict[tuple[date, str], dict[str, Any]]:
    seed = 20260215
    print(f"seed={seed}")
    rng = random.Random(seed)
    days: dict[tuple[date, str], dict[str, Any]] = {}
    rows, samples = [], []
    for i in range((END - START).days + 1):
        day = START + timedelta(days=i)
        for agent in AGENTS:
            if rng.random() < 0.2:
                continue  # an agent without a row that day
            sent = rng.randint(0, 30)
            waits = [round(rng.lognormvariate(4, 1.5), 3) for _ in range(rng.choice([0, 1, 3, 7]))]
            days[(day, agent)] = {"sent": sent, "read": sent // 3, "waits": waits}
            rows.append(
                daily(day, agent, sent=sent, read=sent // 3, agent_responses=len(waits),
                      agent_response_avg_s=mean(waits) if waits else None,
                      agent_response_p50_s=nearest_rank(waits, 50) if waits else None,
                      agent_response_p90_s=nearest_rank(waits, 90) if waits else None)
            )  # fmt: skip
            samples += [sample(day, agent, "agent_response", w) for w in waits]
    warehouse.load("daily_metrics", rows)
    warehouse.load("response_samples", samples)
    return days


@pytest.mark.parametrize("scale", ["day", "week", "month"])
def test_the_all_agents_row_pools_every_agent(
    export_client: Any, warehouse: Warehouse, scale: str
) -> None:
    days = _seed(warehouse)
    resp = export_client.get(
        "/",
        query_string={"start": START, "end": END, "scale": scale, "metrics": METRICS,
                      "total": "1"},
    )  # fmt: skip
    assert resp.status_code == 200, resp.data
    rows = parse_csv(resp.data)
    pooled: dict[date, dict[str, Any]] = defaultdict(lambda: {"sent": 0, "read": 0, "waits": []})
    for (day, _agent), v in days.items():
        p = pooled[_label(scale, day)]
        p["sent"] += v["sent"]
        p["read"] += v["read"]
        p["waits"] += v["waits"]
    totals = [r for r in rows if r["agent_id"] == "*"]
    assert [r["date"] for r in totals] == sorted({str(_label(scale, d)) for d, _ in days})
    for r in totals:
        p = pooled[date.fromisoformat(r["date"])]
        waits = p["waits"]
        assert int(r["sent"]) == p["sent"]
        assert int(r["read"]) == p["read"]
        assert r["read_rate"] == (f"{p['read'] / p['sent']:.4f}" if p["sent"] else "")
        assert int(r["agent_responses"]) == len(waits)
        if waits:
            assert float(r["agent_response_avg_s"]) == pytest.approx(mean(waits), rel=1e-9)
            assert float(r["agent_response_p50_s"]) == nearest_rank(waits, 50)
            assert float(r["agent_response_p90_s"]) == nearest_rank(waits, 90)
        else:
            assert r["agent_response_avg_s"] == r["agent_response_p90_s"] == ""
    # The "*" row sorts first in each period, and the agents' own rows are unchanged.
    assert [r["agent_id"] for r in rows[: len(AGENTS) + 1]] == ["*", *AGENTS]
    plain = export_client.get(
        "/", query_string={"start": START, "end": END, "scale": scale, "metrics": METRICS}
    )
    assert parse_csv(plain.data) == [r for r in rows if r["agent_id"] != "*"]


def test_total_beside_one_agent(export_client: Any, warehouse: Warehouse) -> None:
    warehouse.load(
        "daily_metrics",
        [daily("2026-01-05", "acme", sent=3), daily("2026-01-05", "bravo", sent=4),
         daily("2026-01-06", "bravo", sent=5)],
    )  # fmt: skip
    resp = export_client.get(
        "/",
        query_string={"start": "2026-01-05", "end": "2026-01-06", "metrics": "sent",
                      "agent": "acme", "total": "1"},
    )  # fmt: skip
    assert resp.data.decode() == (
        "date,agent_id,sent\r\n"
        "2026-01-05,*,7\r\n"
        "2026-01-05,acme,3\r\n"
        "2026-01-06,*,5\r\n"
        "2026-01-06,acme,0\r\n"
    )
