"""Cloud Functions entry points: parse the request, call the core, map the result.

functions-framework --source functions/main.py --target ingest
functions-framework --source functions/main.py --target export
"""

from __future__ import annotations

import time

import flask
import functions_framework
from rbm_analytics import clients
from rbm_analytics import export as export_core
from rbm_analytics import ingest as ingest_core
from rbm_analytics import refresh as refresh_core
from rbm_analytics.config import get_settings
from rbm_analytics.errors import HttpError
from rbm_analytics.http import Request, Response, error_response, read_body


def _to_flask(response: Response) -> flask.Response:
    return flask.Response(
        response.body,
        status=response.status,
        content_type=response.content_type,
        headers=dict(response.headers),
    )


def _request(request: flask.Request, limit: int) -> Request:
    return Request(
        method=request.method,
        path=request.path,
        headers=dict(request.headers.items()),
        body=read_body(request.stream, request.content_length, limit),
        query=request.args.to_dict(),
    )


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    """RBM webhook and sent log into Firestore (SPEC §2)."""
    started = time.perf_counter()
    try:
        settings = get_settings()
        req = _request(request, settings.max_body_bytes)
    except HttpError as exc:
        return _to_flask(ingest_core.rejected(request.path, exc, started))
    return _to_flask(ingest_core.handle(req, settings, clients.event_store, started=started))


@functions_framework.http
def refresh(request: flask.Request) -> flask.Response:
    """Morning refresh: Firestore changes into the BigQuery mirror and daily tables (SPEC §3)."""
    try:
        settings = get_settings()
        req = _request(request, settings.max_body_bytes)
    except HttpError as exc:
        return _to_flask(error_response(exc))
    return _to_flask(refresh_core.handle(req, settings, refresh_core.default_clients()))


@functions_framework.http
def export(request: flask.Request) -> flask.Response:
    """CSV and JSON export and the Analytics page (SPEC §4); the body streams."""
    try:
        settings = get_settings()
        req = _request(request, settings.max_body_bytes)
    except HttpError as exc:
        return _to_flask(error_response(exc))
    return _to_flask(export_core.handle(req, settings, clients.bigquery_client))
