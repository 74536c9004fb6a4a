"""Google Cloud clients, created once per instance on first use.

With ``FIRESTORE_EMULATOR_HOST`` / ``BIGQUERY_EMULATOR_HOST`` set, the same
code talks to local emulators with anonymous credentials over plain HTTP.
"""

from __future__ import annotations

import os
from functools import cache

from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, firestore

from .config import Settings, get_settings
from .store import FirestoreStore


def make_firestore_client(settings: Settings) -> firestore.Client:
    # The client itself honours FIRESTORE_EMULATOR_HOST.
    return firestore.Client(project=settings.project, database=settings.firestore_database)


def make_bigquery_client(settings: Settings) -> bigquery.Client:
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


@cache
def firestore_client() -> firestore.Client:
    return make_firestore_client(get_settings())


@cache
def bigquery_client() -> bigquery.Client:
    return make_bigquery_client(get_settings())


@cache
def event_store() -> FirestoreStore:
    settings = get_settings()
    return FirestoreStore(
        firestore_client(),
        retention_days=settings.retention_days,
        deadline_s=settings.firestore_deadline_s,
    )


def reset() -> None:
    """Forget cached settings and clients (tests change the environment)."""
    get_settings.cache_clear()
    firestore_client.cache_clear()
    bigquery_client.cache_clear()
    event_store.cache_clear()
