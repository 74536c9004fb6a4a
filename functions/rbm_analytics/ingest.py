"""The ``ingest`` function's core: route, authenticate, parse, store (SPEC §2).

    POST /                 RBM webhook (signed envelope) or verification handshake
    POST /agent-messages   the agent backend's sent log (bearer key)

Statuses: 200 stored or duplicate (JSON counts) or handshake secret (text);
400 malformed; 401 bad signature or key; 403 handshake with an unknown token;
404 unknown path; 405 not POST; 413 body too large; 503 storage failed (the
sender retries; nothing was acknowledged).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import logs
from .auth import is_client_token, verify_bearer, verify_signature
from .config import Settings
from .errors import Forbidden, HttpError, MethodNotAllowed, NotFound
from .http import Request, Response, error_response, json_response
from .rbm import (
    envelope_data,
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


def handle(request: Request, settings: Settings, store_factory: Callable[[], Store]) -> Response:
    """Serve one ingest request and write its log line."""
    started = time.perf_counter()
    fields: dict[str, Any] = {"route": _route_name(request.path)}
    try:
        response = _dispatch(request, settings, store_factory, fields)
    except HttpError as exc:
        fields["error"] = exc.message
        response = error_response(exc)
    fields["status"] = response.status
    fields["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    severity = "INFO" if response.status < 400 else "ERROR" if response.status >= 500 else "WARNING"
    logs.emit(severity, "ingest request", **fields)
    return response


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
        raise NotFound(f"no route {request.path[:100]!r}; POST to / or {AGENT_MESSAGES_PATH}")
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
    record = parse_webhook_payload(
        data, phone_key=settings.require_phone_hash_key(), received_us=now_us()
    )
    fields["agent_id"] = record.agent_id
    fields["kind"] = _kind(record)
    counts = store_factory().put(record)
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
    counts = store_factory().put_agent_messages(records)
    return _stored(counts, fields)


def _kind(record: Receipt | UserMessage | UserEvent) -> str:
    if isinstance(record, Receipt):
        return record.receipt
    if isinstance(record, UserMessage):
        return f"user_message:{record.kind}"
    return record.event_type


def _stored(counts: WriteCounts, fields: dict[str, Any]) -> Response:
    fields.update(outcome="stored", stored=counts.stored, duplicate=counts.duplicate)
    return json_response(200, {"stored": counts.stored, "duplicate": counts.duplicate})
