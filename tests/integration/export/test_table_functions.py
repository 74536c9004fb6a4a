"""The analysts' table functions: created by ensure_tables from the same files
as Terraform, their rows equal to the export's for the same range and scale,
and every base table read only within the date arguments."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from google.api_core.exceptions import BadRequest
from google.cloud import bigquery
from rbm_analytics.core.tables import ensure_tables, routine_defs, routine_sql

from tests.export_data import Warehouse
from tests.integration.export.test_views import COLUMNS as DAILY_COLUMNS
from tests.integration.export.test_views import START, _same, _seed
from tests.support import REPO_ROOT

# Wednesday to Tuesday across a month end: the first and last ISO weeks and
# both months are cut by the range, as the export cuts them.
RANGE = (date(2026, 1, 7), date(2026, 2, 3))
# Reach is compared with the reference over real traffic in test_export_reach.
COLUMNS = [*DAILY_COLUMNS, "recipients", "responders"]


def _call(
    warehouse: Warehouse, name: str, start: date, end: date, scale: str
) -> list[dict[str, Any]]:
    names = ", ".join(f"`{c}`" for c in COLUMNS)
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("start", "DATE", start),
            bigquery.ScalarQueryParameter("end", "DATE", end),
            bigquery.ScalarQueryParameter("scale", "STRING", scale),
        ]
    )
    rows = warehouse.client.query(
        f"SELECT date, agent_id, {names} FROM `{warehouse.table(name)}`(@start, @end, @scale) "
        "ORDER BY date, agent_id",
        job_config=config,
    ).result()
    return [dict(r.items()) for r in rows]


@pytest.mark.parametrize("scale", ["week", "month", "day"])
def test_table_functions_equal_the_export(
    export_client: Any, warehouse: Warehouse, scale: str
) -> None:
    _seed(warehouse)
    ensure_tables(warehouse.client, warehouse.project, warehouse.dataset, "US", reach=True)
    created = {r.routine_id for r in warehouse.client.list_routines(
        f"{warehouse.project}.{warehouse.dataset}")}  # fmt: skip
    assert {name for name, r in routine_defs().items() if not r.authorized} <= created

    start, end = (START, date(2026, 1, 18)) if scale == "day" else RANGE
    resp = export_client.get(
        "/",
        query_string={"start": start, "end": end, "scale": scale, "total": "1",
                      "metrics": ",".join(COLUMNS), "format": "json"},
    )  # fmt: skip
    assert resp.status_code == 200, resp.data
    exported = resp.get_json()
    for name, pooled in (("agent_periods", False), ("all_agents_periods", True)):
        want = [r for r in exported if (r["agent_id"] == "*") == pooled]
        got = _call(warehouse, name, start, end, scale)
        assert [(str(g["date"]), g["agent_id"]) for g in got] == [
            (w["date"], w["agent_id"]) for w in want
        ], name
        assert got, name
        problems = [
            f"{name} {w['date']} {w['agent_id']} {c}: function {g[c]!r}, export {w[c]!r}"
            for g, w in zip(got, want, strict=True)
            for c in COLUMNS
            if not _same(g[c], w[c])
        ]
        assert not problems, "\n".join(problems[:20])
    # The seeded numbers are not all zero: the comparison compared something.
    assert any(r["agent_response_p90_s"] is not None for r in exported)


def test_an_unknown_scale_is_an_error(warehouse: Warehouse) -> None:
    ensure_tables(warehouse.client, warehouse.project, warehouse.dataset, "US", reach=True)
    with pytest.raises(BadRequest, match="scale must be day, week or month"):
        _call(warehouse, "agent_periods", *RANGE, "year")


def test_each_base_table_is_read_within_the_date_arguments() -> None:
    """Partition pruning: every read of a table is filtered on its partitioning
    column `date` by the function's arguments, which are constants of the
    calling query."""
    partition = {"agent_messages": "sent_date", "user_messages": "event_date"}
    for name, rdef in routine_defs().items():
        sql = routine_sql(name, "p", "d")
        assert "${" not in sql
        reads = re.findall(r"FROM `p\.d\.(\w+)` AS (\w+)\n((?:(?!FROM).)*)", sql, re.S)
        assert sorted(table for table, _, _ in reads) == (
            ["agent_messages", "user_messages"] if rdef.authorized
            else ["daily_metrics", "response_samples"]
        )  # fmt: skip
        for table, alias, clauses in reads:
            column = partition.get(table, "date")
            assert f"WHERE {alias}.{column} BETWEEN start_date AND end_date" in clauses, name
        # The reach function is called with the same arguments: its reads are pruned alike.
        for call in re.findall(r"FROM `p\.d_reach\.(\w+)`\((.*?)\)", sql):
            assert call == ("period_reach", "start_date, end_date, scale"), name


def test_terraform_and_the_functions_read_the_same_files() -> None:
    infra = sorted(p.stem for p in (REPO_ROOT / "infra" / "routines").glob("*.sql"))
    assert sorted(routine_defs()) == infra
    assert infra == ["agent_periods", "all_agents_periods", "period_reach"]
