"""The analysts' views: created by ensure_tables from the same SQL files as
Terraform, equal to the export's rows, and filterable by date partition."""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from statistics import mean
from typing import Any

import pytest
from rbm_analytics.core.tables import ensure_tables, view_names, view_sql
from rbm_analytics_dev.reference import nearest_rank

from tests.export_data import Warehouse, daily, sample
from tests.support import REPO_ROOT

AGENTS = ("acme", "bravo")
START, END = date(2026, 1, 5), date(2026, 1, 18)
COLUMNS = [
    "sent",
    "delivered",
    "read",
    "typing_events",
    "user_messages",
    "user_text",
    "user_files",
    "user_locations",
    "suggestion_replies",
    "suggestion_actions",
    "reads_with_reply",
    "read_to_reply_avg_s",
    "read_to_reply_p50_s",
    "agent_responses",
    "agent_response_avg_s",
    "agent_response_p50_s",
    "agent_response_p90_s",
    "delivery_rate",
    "read_rate",
]


def _seed(warehouse: Warehouse) -> None:
    seed = 20260118
    print(f"seed={seed}")
    rng = random.Random(seed)
    rows, samples = [], []
    # One day before and after the range: the views must not leak them in.
    for i in range(-1, (END - START).days + 2):
        day = START + timedelta(days=i)
        for agent in AGENTS:
            sent = rng.randint(0, 40)
            waits = [round(rng.lognormvariate(4, 1.5), 3) for _ in range(rng.choice([0, 1, 4]))]
            reads = [round(rng.lognormvariate(3, 1), 3) for _ in range(rng.choice([0, 2, 5]))]
            rows.append(
                daily(day, agent, sent=sent, delivered=sent - sent // 5, read=sent // 2,
                      typing_events=rng.randint(0, 9), user_messages=rng.randint(0, 9),
                      reads_with_reply=len(reads),
                      read_to_reply_avg_s=mean(reads) if reads else None,
                      read_to_reply_p50_s=nearest_rank(reads, 50) if reads else None,
                      agent_responses=len(waits),
                      agent_response_avg_s=mean(waits) if waits else None,
                      agent_response_p50_s=nearest_rank(waits, 50) if waits else None,
                      agent_response_p90_s=nearest_rank(waits, 90) if waits else None)
            )  # fmt: skip
            samples += [sample(day, agent, "agent_response", w) for w in waits]
            samples += [sample(day, agent, "read_to_reply", r) for r in reads]
    warehouse.load("daily_metrics", rows)
    warehouse.load("response_samples", samples)


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and got is not None:
        return bool(got == pytest.approx(want, rel=1e-9))
    return bool(got == want)


def test_views_equal_the_export(export_client: Any, warehouse: Warehouse) -> None:
    _seed(warehouse)
    ensure_tables(warehouse.client, warehouse.project, warehouse.dataset, "US")
    assert set(view_names()) <= {t.table_id for t in warehouse.client.list_tables(
        f"{warehouse.project}.{warehouse.dataset}")}  # fmt: skip

    for view, extra in (("agent_daily", {}), ("all_agents_daily", {"total": "1"})):
        resp = export_client.get(
            "/",
            query_string={"start": START, "end": END, "metrics": ",".join(COLUMNS),
                          "format": "json", **extra},
        )  # fmt: skip
        assert resp.status_code == 200, resp.data
        exported = [r for r in resp.get_json() if (r["agent_id"] == "*") == bool(extra)]
        names = ", ".join(f"`{c}`" for c in COLUMNS)
        rows = warehouse.client.query(
            f"SELECT date, agent_id, {names} FROM `{warehouse.table(view)}` "
            f"WHERE date BETWEEN '{START}' AND '{END}' ORDER BY date, agent_id"
        ).result()
        got = [dict(r.items()) for r in rows]
        assert len(got) == len(exported) == (END - START).days + 1 if extra else len(got)
        assert [(str(g["date"]), g["agent_id"]) for g in got] == [
            (e["date"], e["agent_id"]) for e in exported
        ]
        problems = [
            f"{view} {e['date']} {e['agent_id']} {c}: view {g[c]!r}, export {e[c]!r}"
            for g, e in zip(got, exported, strict=True)
            for c in COLUMNS
            if not _same(g[c], e[c])
        ]
        assert not problems, "\n".join(problems[:20])


def test_a_date_filter_reaches_each_partitioned_table() -> None:
    """BigQuery prunes partitions when the filter on `date` can be pushed to
    each base table: the views neither aggregate nor window across dates."""
    for name in view_names():
        sql = view_sql(name, "p", "d")
        assert "${" not in sql
        assert re.findall(r"`p\.d\.(\w+)`", sql), name
        for group in re.findall(r"GROUP BY ([\w, ]+)", sql):
            assert group.split(",")[0].strip() == "date", (name, group)
        for window in re.findall(r"PARTITION BY ([\w, ]+)", sql):
            assert window.split(",")[0].strip() == "date", (name, window)
        assert "JOIN" not in sql or "USING (date)" in sql, name


def test_terraform_and_the_functions_read_the_same_files() -> None:
    infra = sorted(p.stem for p in (REPO_ROOT / "infra" / "views").glob("*.sql"))
    assert list(view_names()) == infra == ["agent_daily", "all_agents_daily"]
