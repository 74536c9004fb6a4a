"""Session fixtures: the real Firestore emulator (and, on demand, BigQuery's).

Emulators start once per test session on free ports, in their own process
groups, and are stopped at the end with nothing left running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rbm_analytics.core import clients
from rbm_analytics_dev.local import emulators

from tests.support import BASE_ENV, PROJECT, REPO_ROOT


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long variants (make soak)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``soak`` run only with ``--soak``: long, or bounded by a measured figure."""
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="a soak test: run with make soak")
    for item in items:
        if item.get_closest_marker("soak"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from the base settings and fresh clients."""
    for name in list(os.environ):
        if name.startswith(
            ("FIRESTORE_", "BIGQUERY_", "RBM_", "AGENT_API", "PHONE_HASH", "FORWARD_", "PUBSUB_")
        ):
            monkeypatch.delenv(name, raising=False)
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)
    clients.reset()
    yield
    clients.reset()


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    log = tmp_path_factory.mktemp("firestore") / "emulator.log"
    proc = emulators.firestore_emulator(emulators.free_port(), log_path=log).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def firestore_host(firestore_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty emulator database, with the environment pointing at it."""
    host: str = firestore_emulator.host
    emulators.wipe_firestore(host, PROJECT)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
    clients.reset()
    return host


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("bigquery")
    proc = emulators.bigquery_emulator(
        emulators.free_port(), emulators.free_port(), PROJECT, data, log_path=data / "log"
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def ingest_app() -> Any:
    from tests.app_client import create_app

    return create_app("ingest")


@pytest.fixture
def ingest_client(ingest_app: Any, firestore_host: str) -> Any:
    from tests.app_client import client_for

    return client_for(ingest_app)


def pytest_report_header(config: pytest.Config) -> str:
    return f"rbm-analytics tests; repo {Path(REPO_ROOT)}"
