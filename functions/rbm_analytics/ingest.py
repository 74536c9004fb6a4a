"""The ``ingest`` function's core: route, authenticate, parse, store (SPEC §2).

    POST /                 RBM webhook (signed envelope) or verification handshake
    POST /agent-messages   the agent backend's sent log (bearer key)

Statuses: 200 stored or duplicate (JSON counts), or an agent launch event
acknowledged and not stored (``ignored``), or the handshake secret (text);
400 malformed; 401 bad signature or key; 403 handshake with an unknown token;
404 unknown path; 405 not POST; 413 body too large; 503 storage failed (the
sender retries; nothing was acknowledged).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import logs
from .auth import is_client_token, verify_bearer, verify_signature
from .config import Settings
from .errors import Forbidden, HttpError, MethodNotAllowed, NotFound, ServiceUnavailable
from .http import Request, Response, error_response, json_response
from .rbm import (
    envelope_data,
    is_agent_launch_event,
    parse_agent_messages,
    parse_handshake,
    parse_json,
    parse_webhook_payload,
)
from .records import Receipt, UserEvent, UserMessage, WriteCounts
from .store import Store
from .timeutil import now_us

WEBHOOK_PATHS = ("/", "")
AGENT_MESSAGES_PATH = "/agent-messages"


def handle(
    request: Request,
    settings: Settings,
    store_factory: Callable[[], Store],
    *,
    started: float | None = None,
) -> Response:
    """Serve one ingest request and write its one log line.

    ``started`` is a ``time.perf_counter()`` value taken when the request
    arrived, so the logged latency includes reading the body.
    """
    started = time.perf_counter() if started is None else started
    fields: dict[str, Any] = {"route": _route_name(request.path), "stored": 0, "duplicate": 0}
    try:
        response = _dispatch(request, settings, store_factory, fields)
    except HttpError as exc:
        response = _error(exc, fields)
    except Exception as exc:
        # A bug, not bad input: say where it happened, never what the payload held.
        fields["exception"] = _where(exc)
        response = json_response(500, {"error": "internal error; the request was not stored"})
    _log(response, fields, started)
    return response


def rejected(path: str, exc: HttpError, started: float) -> Response:
    """A request refused before it could be read (body too large, settings broken)."""
    fields: dict[str, Any] = {"route": _route_name(path), "stored": 0, "duplicate": 0}
    response = _error(exc, fields)
    _log(response, fields, started)
    return response


def _error(exc: HttpError, fields: dict[str, Any]) -> Response:
    fields["outcome"] = "rejected"
    fields["error"] = exc.message
    if exc.__cause__ is not None:
        fields["cause"] = type(exc.__cause__).__name__
    return error_response(exc)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    place = f" at {Path(last.filename).name}:{last.lineno}" if last else ""
    return f"{type(exc).__name__}{place}"


def _log(response: Response, fields: dict[str, Any], started: float) -> None:
    fields["status"] = response.status
    fields["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    severity = "INFO" if response.status < 400 else "ERROR" if response.status >= 500 else "WARNING"
    logs.emit(severity, "ingest request", **fields)


def _route_name(path: str) -> str:
    path = path.rstrip("/")
    if path in WEBHOOK_PATHS:
        return "webhook"
    if path == AGENT_MESSAGES_PATH:
        return "agent-messages"
    return "unknown"


def _dispatch(
    request: Request,
    settings: Settings,
    store_factory: Callable[[], Store],
    fields: dict[str, Any],
) -> Response:
    route = fields["route"]
    if route == "unknown":
        # The path is not echoed: it could hold anything, a phone number included.
        raise NotFound(f"no such route; POST to / or {AGENT_MESSAGES_PATH}")
    if request.method != "POST":
        raise MethodNotAllowed(request.method, ("POST",))
    if route == "webhook":
        return _webhook(request, settings, store_factory, fields)
    return _agent_messages(request, settings, store_factory, fields)


def _webhook(
    request: Request,
    settings: Settings,
    store_factory: Callable[[], Store],
    fields: dict[str, Any],
) -> Response:
    doc = parse_json(request.body)
    handshake = parse_handshake(doc)
    if handshake is not None:
        fields["route"] = "handshake"
        if not is_client_token(handshake.client_token, settings.rbm_client_tokens):
            raise Forbidden("clientToken is not one of the configured client tokens")
        fields["outcome"] = "verified"
        return Response(200, handshake.secret.encode(), "text/plain; charset=utf-8")

    data = envelope_data(doc)
    verify_signature(data, request.header("X-Goog-Signature"), settings.rbm_client_tokens)
    if is_agent_launch_event(doc, data):
        fields.update(kind="AGENT_LAUNCH_EVENT", outcome="ignored")
        return json_response(200, {"stored": 0, "duplicate": 0, "ignored": 1})
    record = parse_webhook_payload(
        data, phone_key=settings.require_phone_hash_key(), received_us=now_us()
    )
    fields["agent_id"] = record.agent_id
    fields["kind"] = _kind(record)
    counts = _store(store_factory).put(record)
    return _stored(counts, fields)


def _agent_messages(
    request: Request,
    settings: Settings,
    store_factory: Callable[[], Store],
    fields: dict[str, Any],
) -> Response:
    verify_bearer(request.header("Authorization"), settings.agent_api_keys)
    records = parse_agent_messages(
        parse_json(request.body), phone_key=settings.require_phone_hash_key(), received_us=now_us()
    )
    fields["agent_ids"] = sorted({r.agent_id for r in records})[:10]
    fields["records"] = len(records)
    counts = _store(store_factory).put_agent_messages(records)
    return _stored(counts, fields)


def _store(store_factory: Callable[[], Store]) -> Store:
    try:
        return store_factory()
    except HttpError:
        raise
    except Exception as exc:
        # No client (credentials, project, network): the sender must retry.
        raise ServiceUnavailable(
            f"storage client could not be created ({type(exc).__name__}); retry later"
        ) from exc


def _kind(record: Receipt | UserMessage | UserEvent) -> str:
    if isinstance(record, Receipt):
        return record.receipt
    if isinstance(record, UserMessage):
        return f"user_message:{record.kind}"
    return record.event_type


def _stored(counts: WriteCounts, fields: dict[str, Any]) -> Response:
    fields.update(outcome="stored", stored=counts.stored, duplicate=counts.duplicate)
    return json_response(200, {"stored": counts.stored, "duplicate": counts.duplicate})
