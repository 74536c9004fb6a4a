"""Tables the refresh creates when missing, with the permissions it has when deployed."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as gexc
from rbm_analytics.core import clients
from rbm_analytics.core.tables import ALL_TABLES, ensure_tables

from tests.support import PROJECT


def test_missing_tables_are_created_without_creating_the_existing_dataset(
    bq_dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = clients.bigquery_client()
    ensure_tables(client, PROJECT, bq_dataset, "US")
    assert {t.table_id for t in client.list_tables(f"{PROJECT}.{bq_dataset}")} == set(ALL_TABLES)
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
