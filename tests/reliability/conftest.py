"""Reliability suite: short by default; ``--soak`` (make soak) runs the long variants."""

from __future__ import annotations

import pytest


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--soak"))


# The refresh tests' per-test BigQuery dataset, shared with this suite.
from tests.integration.conftest import bq_dataset  # noqa: E402, F401
