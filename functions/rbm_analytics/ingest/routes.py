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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rbm_analytics import web
from rbm_analytics.core.config import Settings, get_settings
from rbm_analytics.core.errors import Forbidden, HttpError, ServiceUnavailable
from rbm_analytics.core.http import Request, Response, json_response
from rbm_analytics.core.timeutil import now_us
from rbm_analytics.ingest.auth import is_client_token, verify_bearer, verify_signature
from rbm_analytics.ingest.rbm import (
    envelope_data,
    is_agent_launch_event,
    parse_agent_messages,
    parse_handshake,
    parse_json,
    parse_webhook_payload,
)
from rbm_analytics.ingest.records import Receipt, UserEvent, UserMessage, WriteCounts
from rbm_analytics.ingest.store import Store, event_store

AGENT_MESSAGES_PATH = "/agent-messages"


@dataclass(frozen=True)
class Deps:
    settings: Settings
    store_factory: Callable[[], Store]


def handle(
    request: Request,
    settings: Settings,
    store_factory: Callable[[], Store],
    *,
    started: float | None = None,
) -> Response:
    """Serve one ingest request and write its one log line (statuses above)."""
    return web.serve(
        SERVICE,
        request,
        lambda: Deps(settings, store_factory),
        fields={"stored": 0, "duplicate": 0},
        started=started,
    )


def _webhook(request: Request, deps: Deps, fields: dict[str, Any]) -> Response:
    settings, store_factory = deps.settings, deps.store_factory
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


def _agent_messages(request: Request, deps: Deps, fields: dict[str, Any]) -> Response:
    settings, store_factory = deps.settings, deps.store_factory
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


SERVICE = web.Service(
    "ingest",
    (
        web.Route("webhook", ("POST",), _webhook, "/"),
        web.Route("agent-messages", ("POST",), _agent_messages, AGENT_MESSAGES_PATH),
    ),
    usage=f"POST to / or {AGENT_MESSAGES_PATH}",
)


def serve_default(request: Request, started: float) -> Response:
    """``handle`` with the instance's settings and store (the deployed function)."""
    return handle(request, get_settings(), event_store, started=started)
