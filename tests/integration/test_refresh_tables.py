"""Tables the refresh creates when missing, with the permissions it has when deployed."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from rbm_analytics.core import clients
from rbm_analytics.core.tables import (
    ALL_TABLES,
    ROUTINE_FIELDS,
    ensure_tables,
    reach_dataset,
    routine_defs,
    routine_sql,
    table_defs,
    view_names,
)

from tests.support import PROJECT


def test_missing_tables_are_created_without_creating_the_existing_dataset(
    bq_dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = clients.bigquery_client()
    ensure_tables(client, PROJECT, bq_dataset, "US")
    created = {t.table_id for t in client.list_tables(f"{PROJECT}.{bq_dataset}")}
    # The emulator lists table functions among the tables; BigQuery does not.
    assert created - set(routine_defs()) == set(ALL_TABLES) | set(view_names())
    # The analysts' functions call the authorized reach function, which only
    # Terraform (or the local stack) creates: without it they wait.
    routines = {r.routine_id for r in client.list_routines(f"{PROJECT}.{bq_dataset}")}
    assert routines == set()
    ensure_tables(client, PROJECT, bq_dataset, "US", reach=True)  # what Terraform creates
    routines = {r.routine_id for r in client.list_routines(f"{PROJECT}.{bq_dataset}")}
    assert routines == {name for name, r in routine_defs().items() if not r.authorized}
    home = reach_dataset(bq_dataset)
    assert {r.routine_id for r in client.list_routines(f"{PROJECT}.{home}")} == {
        name for name, r in routine_defs().items() if r.authorized
    }
    client.delete_table(f"{PROJECT}.{bq_dataset}.daily_postbacks")

    # Deployed, the refresh holds dataEditor on its dataset only: creating a
    # dataset (even one that exists) is refused with 403.
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise gexc.Forbidden("Access Denied: bigquery.datasets.create")

    monkeypatch.setattr(client, "create_dataset", forbidden)
    ensure_tables(client, PROJECT, bq_dataset, "US")
    table = client.get_table(f"{PROJECT}.{bq_dataset}.daily_postbacks")
    assert table.time_partitioning.field == "date"
    assert table.clustering_fields == ["agent_id"]


def test_columns_added_by_a_newer_version_are_appended_to_existing_tables(bq_dataset: str) -> None:
    client = clients.bigquery_client()
    path = f"{PROJECT}.{bq_dataset}"
    ensure_tables(client, PROJECT, bq_dataset, "US")
    # daily_metrics as an older version created it: without its last two columns.
    tdef = table_defs()["daily_metrics"]
    older = dataclasses.replace(tdef, fields=tdef.fields[:-2])
    client.delete_table(f"{path}.daily_metrics")
    client.create_table(older.table(path))
    client.query(
        f"INSERT INTO `{path}.daily_metrics` ({', '.join(older.columns)}) "
        f"SELECT DATE '2026-01-01', 'acme', {', '.join(_older_values(older))}"
    ).result()

    ensure_tables(client, PROJECT, bq_dataset, "US")
    table = client.get_table(f"{path}.daily_metrics")
    assert [f.name for f in table.schema] == list(tdef.columns)
    added = {f.name: f.mode for f in table.schema[-2:]}
    assert added == dict.fromkeys(tdef.columns[-2:], "NULLABLE")
    (row,) = client.query(f"SELECT * FROM `{path}.daily_metrics`").result()
    assert row["sent"] == 1 and all(row[c] is None for c in added), "the old row is kept"
    ensure_tables(client, PROJECT, bq_dataset, "US")  # nothing left to add: no change
    assert [f.name for f in client.get_table(f"{path}.daily_metrics").schema] == list(tdef.columns)


def _older_values(tdef: Any) -> list[str]:
    literal = {"INT64": "1", "FLOAT64": "NULL", "TIMESTAMP": "CURRENT_TIMESTAMP()"}
    return [literal[f["type"]] for f in tdef.fields[2:]]


def test_a_table_function_from_an_older_version_is_replaced(bq_dataset: str) -> None:
    client = clients.bigquery_client()
    ensure_tables(client, PROJECT, bq_dataset, "US", reach=True)  # as deployed
    older = routine_defs()["agent_periods"].routine(PROJECT, bq_dataset)
    older.body = "(SELECT start_date AS date)"
    client.update_routine(older, list(ROUTINE_FIELDS))

    ensure_tables(client, PROJECT, bq_dataset, "US")
    routine = client.get_routine(f"{PROJECT}.{bq_dataset}.agent_periods")
    assert routine.body == routine_sql("agent_periods", PROJECT, bq_dataset)
