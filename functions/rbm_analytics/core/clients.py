"""Google Cloud clients, created once per instance on first use.

With ``FIRESTORE_EMULATOR_HOST`` / ``BIGQUERY_EMULATOR_HOST`` set, the same
code talks to local emulators with anonymous credentials over plain HTTP.

The client libraries are imported inside the factories: each function loads
only the one it uses (``ingest`` never pays for BigQuery's at a cold start).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, TypeVar

from rbm_analytics.core.config import Settings, get_settings

if TYPE_CHECKING:
    from google.cloud import bigquery, firestore

T = TypeVar("T")
_CACHES: list[Callable[[], object]] = []


def instance_cache(factory: Callable[[], T]) -> Callable[[], T]:
    """Build ``factory``'s value once per instance; ``reset()`` forgets it."""
    cached = cache(factory)
    _CACHES.append(cached)
    return cached


def make_firestore_client(settings: Settings) -> firestore.Client:
    from google.cloud import firestore

    # The client itself honours FIRESTORE_EMULATOR_HOST.
    return firestore.Client(project=settings.project, database=settings.firestore_database)


def make_bigquery_client(settings: Settings) -> bigquery.Client:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    host = os.environ.get("BIGQUERY_EMULATOR_HOST", "").strip()
    if host:
        endpoint = host if host.startswith("http") else f"http://{host}"
        return bigquery.Client(
            project=settings.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
            location=settings.bq_location,
        )
    return bigquery.Client(project=settings.project, location=settings.bq_location)


@instance_cache
def firestore_client() -> firestore.Client:
    return make_firestore_client(get_settings())


@instance_cache
def bigquery_client() -> bigquery.Client:
    return make_bigquery_client(get_settings())


def reset() -> None:
    """Forget cached settings and clients (tests change the environment)."""
    get_settings.cache_clear()
    for cached in _CACHES:
        cached.cache_clear()  # type: ignore[attr-defined]
