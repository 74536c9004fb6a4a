"""The ``ingest`` function's core: route, authenticate, parse, store, relay.

    POST /                 RBM webhook (signed envelope) or verification handshake
    POST /pubsub?token=T   the same events from a Pub/Sub push subscription
    POST /agent-messages   the agent backend's sent log (bearer key)

Statuses:

* 200 stored or duplicate (JSON counts); an agent launch event acknowledged
  and not stored (``ignored``); the handshake secret (text); on the webhook,
  an event about another agent's message: acknowledged, not stored, counted
  as ``conflict`` and logged as a WARNING (RBM would redeliver a non-200);
* 400 malformed; 401 bad signature, push token or key; 403 handshake with an
  unknown token, or an ``agentId`` the verified credential is not bound to
  (nothing from the request is stored); 404 unknown path; 405 not POST;
* 409 a sent record for a message id another agent owns (the error names the
  ids; nothing from the batch is stored); 413 body too large;
* 503 storage failed, the settings are invalid, or the relay's forward to the
  agent's own webhook failed (the sender retries; nothing was acknowledged).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from rbm_analytics import web
from rbm_analytics.core.config import Settings, get_settings
from rbm_analytics.core.errors import Conflict, DomainError, NotPermitted, Unavailable
from rbm_analytics.core.http import Request, Response, json_response
from rbm_analytics.core.timeutil import now_us
from rbm_analytics.ingest.auth import (
    Grant,
    is_client_token,
    verify_bearer,
    verify_push_token,
    verify_signature,
)
from rbm_analytics.ingest.rbm import (
    envelope_data,
    is_agent_launch_event,
    launch_event_agent,
    parse_agent_messages,
    parse_handshake,
    parse_json,
    parse_webhook_payload,
)
from rbm_analytics.ingest.records import Receipt, UserEvent, UserMessage, WriteCounts
from rbm_analytics.ingest.relay import Relay, instance_relay
from rbm_analytics.ingest.store import Store, event_store

AGENT_MESSAGES_PATH = "/agent-messages"
PUBSUB_PATH = "/pubsub"


class Deps(NamedTuple):
    settings: Settings
    store_factory: Callable[[], Store]
    relay: Relay


def handle(
    request: Request,
    settings: Settings,
    store_factory: Callable[[], Store],
    *,
    relay: Relay | None = None,
    started: float | None = None,
) -> Awaitable[Response]:
    """Serve one ingest request and write its one log line (statuses above).

    ``relay`` forwards verified webhook requests (default: the settings' one).
    Returns what to await for the response: storage is awaited, so a
    request holds no thread.
    """
    return web.serve_async(
        SERVICE,
        request,
        _deps_of(settings, store_factory, relay),
        fields={"stored": 0, "duplicate": 0},
        started=started,
    )


# The last request's dependencies: the deployed function passes the same
# settings, store factory and relay every time, so their Deps (and the
# factory serve_async asks for) are made once, not per request.
_last_deps: tuple[Settings, Callable[[], Store], Relay | None, Callable[[], Deps]] | None = None


def _deps_of(
    settings: Settings, store_factory: Callable[[], Store], relay: Relay | None
) -> Callable[[], Deps]:
    global _last_deps
    last = _last_deps
    if last is not None and last[0] is settings and last[1] is store_factory and last[2] is relay:
        return last[3]
    deps = Deps(settings, store_factory, relay or Relay.from_settings(settings))
    factory = functools.partial(_same, deps)
    _last_deps = (settings, store_factory, relay, factory)
    return factory


def _same(deps: Deps) -> Deps:
    return deps


def _webhook(request: Request, deps: Deps, fields: dict[str, Any]) -> Awaitable[Response]:
    # Not a coroutine itself: what it checks raises at once, and what it
    # returns is the one coroutine serve_async awaits.
    settings = deps.settings
    doc = parse_json(request.body)
    handshake = parse_handshake(doc)
    if handshake is not None:
        fields["route"] = "handshake"
        if not is_client_token(handshake.client_token, settings.rbm_client_tokens):
            raise NotPermitted("clientToken is not one of the configured client tokens")
        fields["outcome"] = "verified"
        return _ready(Response(200, handshake.secret.encode(), "text/plain; charset=utf-8"))

    data = envelope_data(doc)
    grant = verify_signature(data, request.header("X-Goog-Signature"), settings.rbm_client_tokens)
    return _accept(request, doc, data, deps, fields, grant)


async def _ready(response: Response) -> Response:
    return response


async def _pubsub(request: Request, deps: Deps, fields: dict[str, Any]) -> Response:
    # Pub/Sub sends no signature: the secret in the push endpoint's URL
    # authenticates it (checked before the body is even parsed).
    grant = verify_push_token(request.query.get("token"), deps.settings.pubsub_push_tokens)
    doc = parse_json(request.body)
    data = envelope_data(doc)
    return await _accept(request, doc, data, deps, fields, grant)


async def _accept(
    request: Request,
    doc: Any,
    data: bytes,
    deps: Deps,
    fields: dict[str, Any],
    grant: Grant,
) -> Response:
    """Store (and relay) one authenticated event envelope; shared by / and /pubsub."""
    settings, relay = deps.settings, deps.relay
    if is_agent_launch_event(doc, data):
        # Not counted, but the bot behind the relay gets it as from RBM.
        agent_id = launch_event_agent(data)
        if agent_id is not None:
            grant.require(agent_id)
        fields.update(kind="AGENT_LAUNCH_EVENT", agent_id=agent_id)
        target = relay.target(agent_id)
        if target is not None:
            await relay.alongside(target, request, _nothing, fields)
        fields["outcome"] = "ignored"
        return json_response(200, {"stored": 0, "duplicate": 0, "ignored": 1})
    record = parse_webhook_payload(
        data,
        phone_key=settings.require_phone_hash_key(),
        received_us=now_us(),
        retention_days=settings.retention_days,
    )
    fields["agent_id"] = record.agent_id
    fields["kind"] = _kind(record)
    grant.require(record.agent_id)
    store = _store(deps.store_factory)
    target = relay.target(record.agent_id)
    if target is None:
        return _stored(await store.put_async(record), fields)

    async def store_it() -> Response:
        return _stored(await store.put_async(record), fields)

    # Verified and valid: only now may it reach the bot, while it is stored.
    # The counts go in the log line even when the forward then fails (a 503
    # after "stored": 1 means the redelivery will be a duplicate).
    return await relay.alongside(target, request, store_it, fields)


async def _nothing() -> None:
    return None


async def _agent_messages(request: Request, deps: Deps, fields: dict[str, Any]) -> Response:
    settings, store_factory = deps.settings, deps.store_factory
    grant = verify_bearer(request.header("Authorization"), settings.agent_api_keys)
    body = parse_json(request.body)
    records = parse_agent_messages(
        body,
        phone_key=settings.require_phone_hash_key(),
        received_us=now_us(),
        retention_days=settings.retention_days,
    )
    fields["agent_ids"] = sorted({r.agent_id for r in records})[:10]
    fields["records"] = len(records)
    batch = isinstance(body, dict) and "agentMessages" in body
    for i, rec in enumerate(records):
        grant.require(rec.agent_id, f"agentMessages[{i}].agentId" if batch else "agentId")
    counts = await _store(store_factory).put_agent_messages_async(records)
    if counts.conflicts:
        fields["message_ids"] = list(counts.conflicts[:10])
        raise Conflict(_conflict_message(counts.conflicts))
    return _stored(counts, fields)


def _conflict_message(ids: tuple[str, ...]) -> str:
    # Which messages, never which agent owns them: that is another tenant's.
    shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
    return (
        f"messageId already belongs to another agent: {shown}; nothing from this request was stored"
    )


def _store(store_factory: Callable[[], Store]) -> Store:
    try:
        return store_factory()
    except DomainError:
        raise
    except Exception as exc:
        # No client (credentials, project, network): the sender must retry.
        raise Unavailable(
            f"storage client could not be created ({type(exc).__name__}); retry later"
        ) from exc


def _kind(record: Receipt | UserMessage | UserEvent) -> str:
    if isinstance(record, Receipt):
        return record.receipt
    if isinstance(record, UserMessage):
        return f"user_message:{record.kind}"
    return record.event_type


def _answer(stored: int, duplicate: int) -> Response:
    # The same bytes json.dumps writes, without an encoder.
    return Response(200, b'{"stored": %d, "duplicate": %d}' % (stored, duplicate))


# What nearly every webhook answers (one event, stored or a copy), made once.
_ANSWERS = {(s, d): _answer(s, d) for s, d in ((1, 0), (0, 1))}


def _stored(counts: WriteCounts, fields: dict[str, Any]) -> Response:
    fields.update(outcome="stored", stored=counts.stored, duplicate=counts.duplicate)
    if not counts.conflicts:
        answer = _ANSWERS.get((counts.stored, counts.duplicate))
        return answer if answer is not None else _answer(counts.stored, counts.duplicate)
    # Another agent's message: acknowledged (RBM would redeliver it for 7
    # days) but not stored; a WARNING so it is seen.
    fields.update(
        outcome="conflict",
        conflict=counts.conflict,
        message_ids=list(counts.conflicts[:10]),
        severity="WARNING",
    )
    body = {"stored": counts.stored, "duplicate": counts.duplicate, "conflict": counts.conflict}
    return json_response(200, body)


SERVICE: web.Service[Deps, Awaitable[Response]] = web.Service(
    "ingest",
    (
        web.Route("webhook", ("POST",), _webhook, "/"),
        web.Route("pubsub", ("POST",), _pubsub, PUBSUB_PATH),
        web.Route("agent-messages", ("POST",), _agent_messages, AGENT_MESSAGES_PATH),
    ),
    usage=f"POST to /, {PUBSUB_PATH}?token=... or {AGENT_MESSAGES_PATH}",
)


async def serve_default(request: Request, started: float) -> Response:
    """``handle`` with the instance's settings and store (the deployed function)."""
    return await handle(
        request, get_settings(), event_store, relay=instance_relay(), started=started
    )
