"""Daily percentiles are exact nearest rank for every sample count from 1 to 200.

One agent per sample count n; each agent's day holds n crafted read-to-reply
durations and n crafted agent-response durations, written straight into the
mirror tables, so the refresh's own SQL turns them into samples and ranks them.
The crafted sets are chosen so that nearest rank differs from the floor-,
round- and interpolation-based percentile definitions for many n: a query
using any of those would fail here.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rbm_analytics.core import clients
from rbm_analytics.core.tables import table_defs
from rbm_analytics.refresh.warehouse import Warehouse
from rbm_analytics_dev.reference import nearest_rank

from tests.export_data import Warehouse as Loader
from tests.support import PROJECT

DAY = date(2026, 4, 6)
SEED = 20260406
PERCENTILES = {
    "read_to_reply_p50_s": ("read_to_reply", 50),
    "agent_response_p50_s": ("agent_response", 50),
    "agent_response_p90_s": ("agent_response", 90),
}


def crafted(rng: random.Random, n: int) -> list[int]:
    """n durations in milliseconds: distinct and uneven, with a run of ties sometimes."""
    values = sorted(rng.sample(range(1, 5_000_000), n))
    if n >= 6 and n % 3 == 0:
        values[n // 2 : n // 2 + 3] = [values[n // 2]] * 3  # ties around the median
    rng.shuffle(values)
    return values


def other_definitions(values: list[int], p: int) -> dict[str, float]:
    """What percentile definitions other than nearest rank would report."""
    ordered = sorted(values)
    n = len(ordered)
    position = (n - 1) * p / 100  # linear interpolation (PERCENTILE_CONT, numpy's default)
    low = math.floor(position)
    high = min(low + 1, n - 1)
    return {
        "floor": ordered[min(n - 1, math.floor(p * n / 100))],
        "round": ordered[max(0, min(n - 1, round(p * n / 100) - 1))],
        "interpolated": ordered[low] + (ordered[high] - ordered[low]) * (position - low),
    }


def _at(ms: int) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_daily_percentiles_are_nearest_rank_for_n_1_to_200(bq_dataset: str) -> None:
    print(f"seed={SEED}")
    rng = random.Random(SEED)
    client = clients.bigquery_client()
    warehouse = Warehouse(client, PROJECT, bq_dataset, "US")
    warehouse.ensure()
    agent_rows: list[dict[str, Any]] = []
    user_rows: list[dict[str, Any]] = []
    want: dict[str, dict[str, list[int]]] = {}
    for n in range(1, 201):
        agent = f"agent-{n:03d}"
        want[agent] = {"read_to_reply": crafted(rng, n), "agent_response": crafted(rng, n)}
        for i, ms in enumerate(want[agent]["read_to_reply"]):
            # Sent at 01:00, read 1 s later, the user's reply `ms` after the READ.
            user = f"r{n}-{i}"
            sent, read = _at(0), _at(1000)
            agent_rows.append(_agent_message(f"m-{user}", agent, user, sent, read))
            reply = read + timedelta(milliseconds=ms)
            user_rows.append(_user_message(f"u-{user}", agent, user, reply))
        for i, ms in enumerate(want[agent]["agent_response"]):
            # The user writes first (a new conversation), the agent answers `ms` later.
            user = f"w{n}-{i}"
            asked = _at(2000)
            user_rows.append(_user_message(f"u-{user}", agent, user, asked))
            agent_rows.append(
                _agent_message(f"m-{user}", agent, user, asked + timedelta(milliseconds=ms), None)
            )
    loader = Loader(client, PROJECT, bq_dataset)
    loader.load("agent_messages", agent_rows)
    loader.load("user_messages", user_rows)

    warehouse.replace_daily(DAY, DAY, window_days=8, refreshed_at=datetime.now(UTC))

    rows = loader.client.query(
        f"SELECT * FROM `{PROJECT}.{bq_dataset}.daily_metrics` WHERE date = '{DAY}'"
    ).result()
    got = {r["agent_id"]: dict(r) for r in rows}
    assert sorted(got) == sorted(want)
    differs = dict.fromkeys(("floor", "round", "interpolated"), 0)
    problems = []
    for agent, series in sorted(want.items()):
        for column, (metric, p) in PERCENTILES.items():
            expected = nearest_rank(series[metric], p) / 1000
            if got[agent][column] != expected:
                problems.append(f"{agent} {column}: got {got[agent][column]}, want {expected}")
            for name, value in other_definitions(series[metric], p).items():
                differs[name] += value / 1000 != expected
    assert not problems, "\n".join(problems[:20])
    print("nearest rank differs from:", differs)
    assert all(count >= 50 for count in differs.values()), differs


def _agent_message(
    mid: str, agent: str, user: str, sent: datetime, read: datetime | None
) -> dict[str, Any]:
    row = dict.fromkeys(table_defs()["agent_messages"].columns)
    row.update(message_id=mid, agent_id=agent, user_key=user, sent_at=_ts(sent),
               sent_date=str(sent.date()), content_type="text", updated_at=_ts(sent))  # fmt: skip
    if read is not None:
        row.update(delivered_at=_ts(read), read_at=_ts(read))
    return row


def _user_message(mid: str, agent: str, user: str, at: datetime) -> dict[str, Any]:
    row = dict.fromkeys(table_defs()["user_messages"].columns)
    row.update(message_id=mid, agent_id=agent, user_key=user, event_at=_ts(at),
               event_date=str(at.date()), kind="text", updated_at=_ts(at))  # fmt: skip
    return row
