"""Cloud Functions entry points, one per deployable.

    functions-framework --source functions/main.py --target ingest
    functions-framework --source functions/main.py --target refresh
    functions-framework --source functions/main.py --target export

Each imports only its own package, on its first request, so a function's
cold start loads only the client library it uses (``ingest`` never loads
BigQuery's). ``rbm_analytics.web`` is the request path all three share.
"""

from __future__ import annotations

import flask
import functions_framework
from rbm_analytics import web
from rbm_analytics.core.errors import NotFound

web.check_settings()


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    """RBM webhook and the agent's sent log into Firestore."""
    from rbm_analytics.ingest import routes

    return web.respond(routes.SERVICE, request, routes.serve_default)


@functions_framework.http
def refresh(request: flask.Request) -> flask.Response:
    """Morning refresh: Firestore changes into the BigQuery mirror and daily tables."""
    from rbm_analytics.refresh import routes

    return web.respond(routes.SERVICE, request, routes.serve_default)


@functions_framework.http
def export(request: flask.Request) -> flask.Response:
    """CSV and JSON export and the Analytics page; the body streams."""
    from rbm_analytics.export import routes

    return web.respond(routes.SERVICE, request, routes.serve_default)


@functions_framework.errorhandler(404)  # type: ignore[untyped-decorator]
def not_found(error: Exception) -> flask.Response:
    """functions-framework answers ``/robots.txt`` and ``/favicon.ico`` itself:
    those get the same JSON 404, headers and log line as every other path."""
    return web.refuse(flask.current_app.name, NotFound("no such route"))
