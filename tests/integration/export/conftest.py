"""Fixtures for the export tests: a fresh BigQuery dataset per test and the served function."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud import bigquery
from rbm_analytics.core import clients
from rbm_analytics.core.tables import reach_dataset, table_defs

from tests.export_data import Warehouse
from tests.support import PROJECT, REPO_ROOT


@pytest.fixture
def warehouse(bigquery_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Warehouse]:
    """An empty dataset with the tables export reads, and the environment pointing at it."""
    dataset = f"export_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bigquery_emulator.host)
    monkeypatch.setenv("BQ_DATASET", dataset)
    clients.reset()
    client = clients.bigquery_client()
    # The same definitions ensure_tables() creates; only the two export reads,
    # since each table costs the emulator a few hundred milliseconds.
    ds = bigquery.Dataset(f"{PROJECT}.{dataset}")
    ds.location = "US"
    client.create_dataset(ds)
    for name in ("daily_metrics", "response_samples"):
        client.create_table(table_defs()[name].table(f"{PROJECT}.{dataset}"))
    yield Warehouse(client, PROJECT, dataset)
    for name in (dataset, reach_dataset(dataset)):  # the second only when a test made it
        client.delete_dataset(f"{PROJECT}.{name}", delete_contents=True, not_found_ok=True)


@pytest.fixture(scope="session")
def export_app() -> Any:
    import functions_framework

    return functions_framework.create_app("export", str(REPO_ROOT / "functions" / "main.py"))


@pytest.fixture
def export_client(export_app: Any, warehouse: Warehouse) -> Any:
    return export_app.test_client()


@pytest.fixture
def offline_client(export_app: Any) -> Any:
    """The export function with no BigQuery at all: for requests refused before any query."""
    return export_app.test_client()
