"""Weeks and months: labels, clipping to [start, end], zero-fill, sums, weighted
averages, rates, and percentiles over each period's own samples."""

from __future__ import annotations

import random
from datetime import date, timedelta
from statistics import mean
from typing import Any

import pytest
from rbm_analytics_dev.reference import nearest_rank

from tests.export_data import Warehouse, daily, parse_csv, sample
from tests.integration.test_refresh_percentiles import crafted, other_definitions


def _rows(client: Any, **params: str) -> list[dict[str, str]]:
    resp = client.get("/", query_string=params)
    assert resp.status_code == 200, resp.data
    return parse_csv(resp.data)


def test_weeks_are_iso_weeks_by_monday_clipped_at_both_ends(
    export_client: Any, warehouse: Warehouse
) -> None:
    warehouse.load(
        "daily_metrics",
        [
            daily("2026-01-05", "acme", sent=100),  # Monday before start: outside
            daily("2026-01-07", "acme", sent=1),  # start, a Wednesday
            daily("2026-01-11", "acme", sent=2),  # Sunday: same ISO week
            daily("2026-01-12", "acme", sent=4),  # next Monday
            daily("2026-01-20", "bravo", sent=7),  # bravo only in one week
            daily("2026-02-02", "acme", sent=8),
            daily("2026-02-03", "acme", sent=16),  # end, a Tuesday
            daily("2026-02-04", "acme", sent=100),  # after end: outside
        ],
    )
    rows = _rows(export_client, start="2026-01-07", end="2026-02-03", scale="week", metrics="sent")
    assert [(r["date"], r["agent_id"], r["sent"]) for r in rows] == [
        ("2026-01-05", "acme", "3"),
        ("2026-01-05", "bravo", "0"),
        ("2026-01-12", "acme", "4"),
        ("2026-01-12", "bravo", "0"),
        ("2026-01-19", "acme", "0"),
        ("2026-01-19", "bravo", "7"),
        ("2026-01-26", "acme", "0"),
        ("2026-01-26", "bravo", "0"),
        ("2026-02-02", "acme", "24"),
        ("2026-02-02", "bravo", "0"),
    ]
    resp = export_client.get(
        "/", query_string={"start": "2026-01-07", "end": "2026-02-03", "scale": "week"}
    )
    assert resp.headers["Content-Disposition"] == (
        'attachment; filename="rbm-analytics_2026-01-07_2026-02-03_week.csv"'
    )


def test_iso_week_spanning_new_year(export_client: Any, warehouse: Warehouse) -> None:
    # 2026-01-01 is a Thursday: its ISO week starts on Monday 2025-12-29.
    warehouse.load(
        "daily_metrics",
        [daily("2025-12-29", "acme", sent=1), daily("2026-01-04", "acme", sent=2)],
    )
    rows = _rows(export_client, start="2025-12-29", end="2026-01-04", scale="week", metrics="sent")
    assert [(r["date"], r["sent"]) for r in rows] == [("2025-12-29", "3")]


def test_months_by_their_first_clipped_at_both_ends(
    export_client: Any, warehouse: Warehouse
) -> None:
    warehouse.load(
        "daily_metrics",
        [
            daily("2026-01-14", "acme", sent=100, read=100),  # before start
            daily("2026-01-15", "acme", sent=3, read=1),
            daily("2026-01-31", "acme", sent=5, read=2),
            daily("2026-03-10", "acme", sent=2, read=2),  # end
            daily("2026-03-11", "acme", sent=100, read=100),  # after end
        ],
    )
    rows = _rows(
        export_client, start="2026-01-15", end="2026-03-10", scale="month", metrics="sent,read"
    )
    assert [(r["date"], r["agent_id"], r["sent"], r["read"]) for r in rows] == [
        ("2026-01-01", "acme", "8", "3"),
        ("2026-02-01", "acme", "0", "0"),
        ("2026-03-01", "acme", "2", "2"),
    ]


def test_rates_divide_the_period_sums(export_client: Any, warehouse: Warehouse) -> None:
    warehouse.load(
        "daily_metrics",
        [
            daily("2026-01-05", "acme", sent=3, delivered=1, read=0),
            daily("2026-01-06", "acme", sent=1, delivered=1, read=1),
            daily("2026-01-13", "acme", sent=0, user_messages=2),  # a week with sent = 0
        ],
    )
    rows = _rows(
        export_client,
        start="2026-01-05",
        end="2026-01-18",
        scale="week",
        metrics="delivery_rate,read_rate,sent",
    )
    # 2/4 = 0.5, not the mean of the daily rates (0.3333 + 1) / 2.
    assert [(r["date"], r["delivery_rate"], r["read_rate"], r["sent"]) for r in rows] == [
        ("2026-01-05", "0.5000", "0.2500", "4"),
        ("2026-01-12", "", "", "0"),
    ]


def test_averages_are_weighted_by_their_sample_counts(
    export_client: Any, warehouse: Warehouse
) -> None:
    warehouse.load(
        "daily_metrics",
        [
            daily("2026-01-05", "acme", reads_with_reply=1, read_to_reply_avg_s=10.0,
                  agent_responses=2, agent_response_avg_s=3.0),
            daily("2026-01-06", "acme", reads_with_reply=3, read_to_reply_avg_s=40.0,
                  agent_responses=0),
            daily("2026-01-07", "acme", reads_with_reply=0, agent_responses=1,
                  agent_response_avg_s=6.0),
            daily("2026-01-12", "acme", sent=1),  # a week without any sample
        ],
    )  # fmt: skip
    warehouse.load(
        "response_samples",
        [
            sample("2026-01-05", "acme", "read_to_reply", 10.0),
            *(sample("2026-01-06", "acme", "read_to_reply", s) for s in (30.0, 40.0, 50.0)),
            *(sample("2026-01-05", "acme", "agent_response", s) for s in (2.0, 4.0)),
            sample("2026-01-07", "acme", "agent_response", 6.0),
        ],
    )
    metrics = "read_to_reply_avg_s,agent_response_avg_s,reads_with_reply,agent_responses"
    rows = _rows(export_client, start="2026-01-05", end="2026-01-18", scale="week", metrics=metrics)
    assert [
        (r["date"], r["read_to_reply_avg_s"], r["agent_response_avg_s"],
         r["reads_with_reply"], r["agent_responses"])
        for r in rows
    ] == [
        ("2026-01-05", "32.5", "4.0", "4", "3"),  # (10 + 3*40) / 4 and (2*3 + 6) / 3
        ("2026-01-12", "", "", "0", "0"),
    ]  # fmt: skip
    # The same as a plain AVG over the samples themselves.
    (avgs,) = warehouse.query(
        f"SELECT AVG(IF(metric = 'read_to_reply', seconds, NULL)), "
        f"AVG(IF(metric = 'agent_response', seconds, NULL)) "
        f"FROM `{warehouse.table('response_samples')}`"
    )
    assert avgs == (32.5, 4.0)


def test_percentiles_come_from_each_periods_own_samples(
    export_client: Any, warehouse: Warehouse
) -> None:
    seed = 20260126
    print(f"seed={seed}")
    rng = random.Random(seed)
    start, end = date(2026, 1, 7), date(2026, 3, 4)
    first, last = start - timedelta(days=5), end + timedelta(days=5)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    samples: list[dict[str, Any]] = []
    metrics_rows: list[dict[str, Any]] = []
    kept: dict[tuple[str, str], list[tuple[date, float]]] = {}
    for day in days:
        values: dict[str, list[float]] = {}
        for metric in ("read_to_reply", "agent_response"):
            n = rng.choice([0, 1, 2, 5, 9, 14])
            values[metric] = [round(rng.lognormvariate(3, 1.2), 3) for _ in range(n)]
            samples += [sample(day, "acme", metric, v) for v in values[metric]]
            kept.setdefault(("acme", metric), []).extend((day, v) for v in values[metric])
        rtr, ar = values["read_to_reply"], values["agent_response"]
        metrics_rows.append(
            daily(
                day,
                "acme",
                reads_with_reply=len(rtr),
                read_to_reply_avg_s=mean(rtr) if rtr else None,
                read_to_reply_p50_s=nearest_rank(rtr, 50) if rtr else None,
                agent_responses=len(ar),
                agent_response_avg_s=mean(ar) if ar else None,
                agent_response_p50_s=nearest_rank(ar, 50) if ar else None,
                agent_response_p90_s=nearest_rank(ar, 90) if ar else None,
            )
        )
    warehouse.load("daily_metrics", metrics_rows)
    warehouse.load("response_samples", samples)
    columns = ("read_to_reply_p50_s", "agent_response_p50_s", "agent_response_p90_s")
    spec = {
        "read_to_reply_p50_s": ("read_to_reply", 50),
        "agent_response_p50_s": ("agent_response", 50),
        "agent_response_p90_s": ("agent_response", 90),
    }
    label = {
        "week": lambda d: d - timedelta(days=d.weekday()),
        "month": lambda d: d.replace(day=1),
        "day": lambda d: d,
    }
    averaged_differs = False
    for scale, period_of in label.items():
        rows = _rows(
            export_client,
            start=str(start),
            end=str(end),
            scale=scale,
            metrics=",".join(columns),
        )
        in_range = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        periods = sorted({period_of(d) for d in in_range})
        assert [r["date"] for r in rows] == [str(p) for p in periods]
        for row in rows:
            for column in columns:
                metric, p = spec[column]
                own = [
                    v
                    for d, v in kept[("acme", metric)]
                    if start <= d <= end and str(period_of(d)) == row["date"]
                ]
                expected = "" if not own else repr(nearest_rank(own, p))
                assert row[column] == expected, (scale, row["date"], column)
                daily_p = [
                    nearest_rank([v for d, v in kept[("acme", metric)] if d == day], p)
                    for day in {d for d, _ in kept[("acme", metric)]}
                    if start <= day <= end and str(period_of(day)) == row["date"]
                ]
                if scale != "day" and own and mean(daily_p) != nearest_rank(own, p):
                    averaged_differs = True
    assert averaged_differs, "the data must tell period percentiles from averaged daily ones"


@pytest.mark.parametrize("scale", ["week", "month"])
def test_json_for_periods(export_client: Any, warehouse: Warehouse, scale: str) -> None:
    warehouse.load("daily_metrics", [daily("2026-01-05", "acme", sent=2, read=1)])
    resp = export_client.get(
        "/",
        query_string={"start": "2026-01-05", "end": "2026-01-11", "scale": scale,
                      "metrics": "sent,read_rate,agent_response_p90_s", "format": "json"},
    )  # fmt: skip
    label = "2026-01-05" if scale == "week" else "2026-01-01"
    assert resp.get_json() == [
        {"date": label, "agent_id": "acme", "sent": 2, "read_rate": 0.5,
         "agent_response_p90_s": None},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("scale", "start", "end"),
    [("week", date(2026, 2, 2), date(2026, 2, 8)), ("month", date(2026, 2, 1), date(2026, 2, 28))],
)
def test_period_percentiles_are_nearest_rank_for_n_1_to_200(
    export_client: Any, warehouse: Warehouse, scale: str, start: date, end: date
) -> None:
    seed = 20260202
    print(f"seed={seed}")
    rng = random.Random(seed)
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    want: dict[str, dict[str, list[int]]] = {}
    samples: list[dict[str, Any]] = []
    for n in range(1, 201):
        agent = f"agent-{n:03d}"
        want[agent] = {}
        for metric in ("read_to_reply", "agent_response"):
            values = crafted(rng, n)
            want[agent][metric] = values
            samples += [sample(rng.choice(days), agent, metric, ms / 1000) for ms in values]
    warehouse.load("daily_metrics", [daily(start, agent) for agent in want])
    warehouse.load("response_samples", samples)
    columns = {
        "read_to_reply_p50_s": ("read_to_reply", 50),
        "agent_response_p50_s": ("agent_response", 50),
        "agent_response_p90_s": ("agent_response", 90),
    }
    rows = _rows(export_client, start=str(start), end=str(end), scale=scale,
                 metrics=",".join(columns))  # fmt: skip
    assert [r["agent_id"] for r in rows] == sorted(want)
    problems = []
    differs = dict.fromkeys(("floor", "round", "interpolated"), 0)
    for row in rows:
        assert row["date"] == str(start - timedelta(days=start.weekday()) if scale == "week"
                                  else start.replace(day=1))  # fmt: skip
        for column, (metric, p) in columns.items():
            values = want[row["agent_id"]][metric]
            expected = nearest_rank(values, p) / 1000
            if row[column] != repr(expected):
                problems.append(f"{row['agent_id']} {column}: got {row[column]}, want {expected}")
            for name, value in other_definitions(values, p).items():
                differs[name] += value / 1000 != expected
    assert not problems, "\n".join(problems[:20])
    assert all(count >= 50 for count in differs.values()), differs
