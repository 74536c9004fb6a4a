"""Cloud Functions entry points, one per deployable.

    functions-framework --source functions/main.py --target ingest
    functions-framework --source functions/main.py --target refresh
    functions-framework --source functions/main.py --target export

Each imports only its own package, on its first request, so a function's
cold start loads only the client library it uses (``ingest`` never loads
BigQuery's). ``rbm_analytics.web`` is the request path all three share.

``ingest`` is an ASGI function (functions-framework serves it on uvicorn,
seeing the ``aio`` decorator; why: ``rbm_analytics.web``); ``refresh`` and
``export`` are WSGI functions on gunicorn and Flask.
"""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
import functions_framework.aio
from rbm_analytics import web
from rbm_analytics.core.errors import NotFound

web.check_settings()


@functions_framework.aio.http
async def ingest(request: Any) -> Any:
    """RBM webhook and the agent's sent log into Firestore."""
    from rbm_analytics.ingest import routes

    return await web.respond_asgi(routes.SERVICE, request, routes.serve_default)


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


# functions-framework answers ``/robots.txt`` and ``/favicon.ico`` itself:
# those get the same JSON 404, headers and log line as every other path.
@functions_framework.errorhandler(404)  # type: ignore[untyped-decorator]
def not_found(error: Exception) -> flask.Response:
    return web.to_flask(web.refuse(flask.current_app.name, NotFound("no such route")))


async def _asgi_not_found(request: Any) -> Any:
    # The ASGI app routes those two paths to this module-level handler of
    # functions-framework's, looked up when the app is built (after this
    # module is loaded); ingest is the one ASGI function.
    return web.to_starlette(web.refuse("ingest", NotFound("no such route")))


functions_framework.aio._handle_not_found = _asgi_not_found
