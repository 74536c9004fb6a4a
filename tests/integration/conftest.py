"""Integration fixtures shared by the refresh tests."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rbm_analytics.core import clients


@pytest.fixture
def bq_dataset(bigquery_emulator: Any, firestore_host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh BigQuery dataset per test, with the environment pointing at both emulators."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bigquery_emulator.host)
    monkeypatch.setenv("BQ_DATASET", name)
    clients.reset()
    return name
