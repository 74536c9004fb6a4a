"""The one request path of all three functions.

Every request, whichever function serves it, goes through ``serve``:

1. route: the path picks a ``Route`` (404 when none does; the path is never
   echoed, since it could hold anything, a phone number included);
2. method: 405 with ``Allow`` when the route does not take it;
3. the route's handler, which raises ``DomainError`` subclasses for what the
   caller did wrong or what storage could not do;
4. errors: an ``DomainError`` becomes its status with a JSON ``{"error"}``; any
   other exception is a bug and becomes a JSON 500 that says nothing of the
   internals, with the traceback (frames only, never the exception's text,
   which may quote a payload) in the log line;
5. headers every response carries (``X-Content-Type-Options: nosniff``);
6. one structured log line per request, with the status, the latency and, in
   the cloud, the trace id from ``X-Cloud-Trace-Context``. A streamed body
   logs its line when the stream ends, with the bytes sent.

Domain modules raise domain errors; only this edge maps them to HTTP.
``respond`` adapts Flask (what functions-framework hands a WSGI function:
``refresh`` and ``export``) and ``respond_asgi`` Starlette (what it hands an
ASGI function: ``ingest``) to the framework-free ``Request``/``Response``
values the cores use.

Why ``ingest`` is served as ASGI: on its threaded WSGI stack (gunicorn's
gthread worker, Flask) the function spent about half of its CPU per event
in the stack itself, and one instance's requests share one interpreter
lock. Under uvicorn with its C parser (httptools) and event loop (uvloop)
the connection handling costs a fraction of that; its requests are
coroutines (``serve_async``), so none needs a thread of its own: handing
each to a thread cost about as much again as the whole ASGI stack
(``make bench``: ingest.events_per_s_16_clients,
ingest.serving_stack_cpu_per_request).
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rbm_analytics.core import logs
from rbm_analytics.core.errors import (
    ConfigError,
    Conflict,
    DomainError,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    NotPermitted,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from rbm_analytics.core.http import (
    SECURITY_HEADERS,
    Request,
    Response,
    check_declared_length,
    json_response,
    over_limit,
    read_body,
)

if TYPE_CHECKING:
    import flask
    import starlette.requests
    import starlette.responses

D = TypeVar("D")
# What a route's handler returns: a Response, or (an ASGI function's) an
# awaitable of one.
R = TypeVar("R")

# The one place a domain error becomes an HTTP status (most specific first).
STATUSES: tuple[tuple[type[DomainError], int], ...] = (
    (InvalidInput, 400),
    (Unauthenticated, 401),
    (NotPermitted, 403),
    (NotFound, 404),
    (MethodNotAllowed, 405),
    (Conflict, 409),
    (TooLarge, 413),
    (ConfigError, 503),
    (Unavailable, 503),
)


def status_of(exc: DomainError) -> int:
    """The HTTP status of a domain error (500 for one this edge does not know)."""
    return next((status for kind, status in STATUSES if isinstance(exc, kind)), 500)


INTERNAL_ERROR = "internal error; nothing was changed by this request"


@dataclass(frozen=True)
class Route(Generic[D, R]):
    """One route: ``path`` exactly (with or without a trailing slash) or, with
    ``prefix``, every path under it; ``handler`` gets the request, the
    service's dependencies and the log fields it may add to."""

    name: str
    methods: tuple[str, ...]
    handler: Callable[[Request, D, dict[str, Any]], R]
    path: str = "/"
    prefix: bool = False

    def matches(self, path: str) -> bool:
        if self.prefix:
            return path == self.path or path.startswith(self.path.rstrip("/") + "/")
        return _exact_path(path) == _exact_path(self.path)


def _exact_path(path: str) -> str:
    """What an exact route compares: the path without trailing slashes."""
    return path.rstrip("/") or "/"


@dataclass(frozen=True)
class Service(Generic[D, R]):
    """A function's routes, and what a 404 tells the caller to use instead."""

    name: str
    routes: Sequence[Route[D, R]]
    usage: str
    # The exact-path routes listed before any prefix route, by their path
    # without trailing slashes: one lookup for nearly every request.
    _exact: dict[str, Route[D, R]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact: dict[str, Route[D, R]] = {}
        for r in self.routes:
            if r.prefix:
                break
            exact.setdefault(_exact_path(r.path), r)
        object.__setattr__(self, "_exact", exact)

    def route(self, path: str) -> Route[D, R] | None:
        found = self._exact.get(path) or self._exact.get(_exact_path(path))
        if found is not None:
            return found
        return next((r for r in self.routes if r.matches(path)), None)

    def checked(self, request: Request, fields: dict[str, Any]) -> Route[D, R]:
        """The route ``request`` goes to (named in ``fields``, with the trace),
        or the 404 or 405 it gets."""
        path = request.path
        route = self._exact.get(path) or self.route(path)
        fields.setdefault("route", route.name if route else "unknown")
        header = request.header("X-Cloud-Trace-Context")
        trace = _trace(header) if header else None
        if trace:
            fields["logging.googleapis.com/trace"] = trace
        if route is None:
            raise NotFound(f"no such route; {self.usage}")
        if request.method not in route.methods:
            raise MethodNotAllowed(request.method, route.methods)
        return route


def serve(
    service: Service[D, Response],
    request: Request,
    deps: Callable[[], D],
    *,
    fields: dict[str, Any] | None = None,
    started: float | None = None,
) -> Response:
    """Serve one request through ``service``; see the module docstring.

    ``deps`` is a factory, called only once the route and method are known,
    so a request that is refused early builds no clients.
    ``started`` is a ``time.perf_counter()`` value taken when the request
    arrived, so the logged latency includes reading the body.
    """
    started = time.perf_counter() if started is None else started
    fields = {} if fields is None else fields
    try:
        response = service.checked(request, fields).handler(request, deps(), fields)
    except Exception as exc:
        response = error(exc, fields)
    return finish(service.name, response, fields, started)


async def serve_async(
    service: Service[D, Awaitable[Response]],
    request: Request,
    deps: Callable[[], D],
    *,
    fields: dict[str, Any] | None = None,
    started: float | None = None,
) -> Response:
    """``serve`` for a service whose handlers are coroutines."""
    started = time.perf_counter() if started is None else started
    fields = {} if fields is None else fields
    try:
        response = await service.checked(request, fields).handler(request, deps(), fields)
    except Exception as exc:
        response = error(exc, fields)
    return finish(service.name, response, fields, started)


def error(exc: BaseException, fields: dict[str, Any]) -> Response:
    """The response for an exception, with what the log line needs in ``fields``."""
    if isinstance(exc, DomainError):
        status = status_of(exc)
        fields.setdefault("outcome", "rejected" if status < 500 else "failed")
        fields["error"] = exc.message
        if exc.__cause__ is not None:
            fields["cause"] = type(exc.__cause__).__name__
        return json_response(status, {"error": exc.message}, exc.headers)
    # A bug, not bad input: where it happened, never what the payload held.
    fields["outcome"] = "error"
    fields["exception"] = _where(exc)
    fields["traceback"] = "".join(traceback.format_tb(exc.__traceback__))[-4000:]
    return json_response(500, {"error": INTERNAL_ERROR})


def finish(name: str, response: Response, fields: dict[str, Any], started: float) -> Response:
    """Add the common headers; log now, or when a streamed body ends."""
    body = response.body
    if not isinstance(body, bytes):
        body = _logged(name, body, fields, started)
    if body is not response.body or response.headers is not SECURITY_HEADERS:
        response = Response(
            response.status,
            body,
            response.content_type,
            {**response.headers, **SECURITY_HEADERS},
        )
    fields["status"] = response.status
    if isinstance(body, bytes):
        _log(name, fields, started)
    return response


def severity(status: int) -> str:
    """The Cloud Logging severity of a request that ended with ``status``."""
    return "INFO" if status < 400 else "ERROR" if status >= 500 else "WARNING"


def _log(name: str, fields: dict[str, Any], started: float, level: str | None = None) -> None:
    fields["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    # A handler may raise its line's severity (a 200 that still needs a look).
    level = level or fields.get("severity") or severity(fields["status"])
    logs.write(level, f"{name} request", fields)


def _logged(
    name: str, chunks: Iterable[bytes], fields: dict[str, Any], started: float
) -> Iterator[bytes]:
    """Pass the chunks on; log one line with the size and duration when the stream ends."""
    sent = 0
    fields["outcome"] = "aborted"
    try:
        for chunk in chunks:
            sent += len(chunk)
            yield chunk
        fields["outcome"] = "complete"
    finally:
        fields["bytes"] = sent
        _log(name, fields, started, "INFO" if fields["outcome"] == "complete" else "WARNING")


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    place = f" at {Path(last.filename).name}:{last.lineno}" if last else ""
    return f"{type(exc).__name__}{place}"


def _trace(header: str) -> str | None:
    """Cloud Logging's trace field (from ``X-Cloud-Trace-Context``), so a
    request's lines group under its trace."""
    trace_id = header.split("/", 1)[0].strip()
    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "").strip()
    if not trace_id or not project or not trace_id.isalnum() or len(trace_id) > 64:
        return None
    return f"projects/{project}/traces/{trace_id}"


# --- Flask adapter (functions-framework) ------------------------------------


def from_flask(request: flask.Request, limit: int) -> Request:
    """The framework-free request; raises TooLarge past ``limit`` bytes."""
    return Request(
        method=request.method,
        path=request.path,
        headers=dict(request.headers.items()),
        body=read_body(request.stream, request.content_length, limit),
        query=request.args.to_dict(),
    )


def to_flask(response: Response) -> flask.Response:
    import flask

    return flask.Response(
        response.body,
        status=response.status,
        content_type=response.content_type,
        headers=dict(response.headers),
    )


def check_settings() -> None:
    """At start, log a settings error as one ERROR line naming the setting.

    The instance still starts: every request then answers 503 with the same
    message (so RBM keeps retrying until the deployment is fixed), and the
    operator finds the cause at the top of the instance's log.
    """
    from rbm_analytics.core.config import get_settings
    from rbm_analytics.core.errors import ConfigError

    try:
        get_settings()
    except ConfigError as exc:
        logs.error("configuration error: every request will answer 503", error=exc.message)


def refuse(name: str, exc: Exception) -> Response:
    """An error answered outside any route (the framework's own paths)."""
    fields: dict[str, Any] = {"route": "unknown"}
    return finish(name, error(exc, fields), fields, time.perf_counter())


def _refused_early(
    service: Service[Any, Any], path: str, exc: Exception, started: float
) -> Response:
    """A request that failed before the core ran (settings broken, body too
    large): the same JSON error and one log line as every other error."""
    route = service.route(path)
    fields: dict[str, Any] = {"route": route.name if route else "unknown"}
    return finish(service.name, error(exc, fields), fields, started)


def respond(
    service: Service[Any, Any],
    request: flask.Request,
    handle: Callable[[Request, float], Response],
) -> flask.Response:
    """Read the body (bounded by the settings' limit) and hand it to ``handle``."""
    from rbm_analytics.core.config import get_settings

    started = time.perf_counter()
    try:
        req = from_flask(request, get_settings().max_body_bytes)
    except Exception as exc:
        return to_flask(_refused_early(service, request.path, exc, started))
    return to_flask(handle(req, started))


# --- Starlette adapter (functions-framework's ASGI mode) ---------------------


async def from_starlette(request: starlette.requests.Request, limit: int) -> Request:
    """The framework-free request; raises TooLarge past ``limit`` bytes,
    having read no more than one chunk past it."""
    declared = request.headers.get("content-length", "")
    check_declared_length(int(declared) if declared.isdigit() else None, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise over_limit(limit)
        chunks.append(chunk)
    query: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, value)  # the first of repeated keys, as Flask's to_dict()
    return Request(
        method=request.method,
        path=request.url.path,
        headers=dict(request.headers.items()),
        body=b"".join(chunks),
        query=query,
    )


def to_starlette(response: Response) -> starlette.responses.Response:
    from starlette.responses import Response as StarletteResponse
    from starlette.responses import StreamingResponse

    if isinstance(response.body, bytes):
        return StarletteResponse(
            response.body,
            status_code=response.status,
            headers=dict(response.headers),
            media_type=response.content_type,
        )
    return StreamingResponse(
        iter(response.body),
        status_code=response.status,
        headers=dict(response.headers),
        media_type=response.content_type,
    )


async def respond_asgi(
    service: Service[Any, Any],
    request: starlette.requests.Request,
    handle: Callable[[Request, float], Awaitable[Response]],
) -> starlette.responses.Response:
    """``respond`` for an ASGI function: the body is read, and ``handle``
    awaited, on the event loop."""
    from rbm_analytics.core.config import get_settings

    started = time.perf_counter()
    try:
        req = await from_starlette(request, get_settings().max_body_bytes)
    except Exception as exc:
        return to_starlette(_refused_early(service, request.url.path, exc, started))
    return to_starlette(await handle(req, started))
