"""Two agents share one ingest; neither can change what the other stored.

Agent A's messages, receipts, user messages and events are stored first.
Then agent B — with its own bound token, push token and API key, and with
credentials valid for any agent — tries every way of touching them through
every route. Each attempt gets its specified status, and every document in
Firestore stays byte-identical (REST JSON of each collection, update times
included). A seeded random variant interleaves both agents' real traffic
with attacks on whatever the other agent has stored by then (``--soak``:
many more rounds).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rbm_analytics.core import clients
from rbm_analytics.core.timeutil import format_us, now_us

from tests.integration.ingest_support import stored_bytes
from tests.support import (
    AGENT_A,
    AGENT_B,
    KEY_A,
    KEY_B,
    TOKEN_A,
    TOKEN_B,
    TWO_AGENT_ENV,
    bearer,
    pubsub_push,
    signed_webhook,
)

PUSH_A, PUSH_B = "push-token-of-acme-0123456789abcd", "push-token-of-bravo-0123456789abc"
TOKEN_ANY, KEY_ANY = "client-token-for-any-agent", "api-key-for-any-agent-0123456789abc"
PHONE_A, PHONE_B = "+12223334444", "+15556667777"
HOUR_US = 3_600_000_000
Y2000_US = 946_684_800_000_000


@pytest.fixture
def ingest(ingest_client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    env = {
        "RBM_CLIENT_TOKENS": f"{TWO_AGENT_ENV['RBM_CLIENT_TOKENS']},{TOKEN_ANY}",
        "AGENT_API_KEYS": f"{TWO_AGENT_ENV['AGENT_API_KEYS']},{KEY_ANY}",
        "PUBSUB_PUSH_TOKENS": f"{PUSH_A}:{AGENT_A},{PUSH_B}:{AGENT_B}",
        "RETENTION_DAYS": "90",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clients.reset()
    return ingest_client


# --- requests as each route takes them ----------------------------------------
def webhook(client: Any, payload: dict[str, Any], token: str) -> Any:
    body, headers = signed_webhook(payload, token)
    return client.post("/", data=body, headers=headers)


def push(client: Any, payload: dict[str, Any], token: str) -> Any:
    body = pubsub_push(json.dumps(payload).encode())
    headers = {"Content-Type": "application/json"}
    return client.post(f"/pubsub?token={token}", data=body, headers=headers)


def send(client: Any, records: list[dict[str, Any]], key: str) -> Any:
    body = records[0] if len(records) == 1 else {"agentMessages": records}
    return client.post("/agent-messages", data=json.dumps(body).encode(), headers=bearer(key))


def sent_record(agent: str, mid: str, phone: str, at_us: int) -> dict[str, Any]:
    return {
        "agentId": agent,
        "name": f"phones/{phone}/agentMessages/{mid}",
        "sendTime": format_us(at_us),
        "contentMessage": {"text": "hello"},
    }


def receipt(agent: str, mid: str, phone: str, kind: str, at_us: int, n: int = 0) -> dict[str, Any]:
    return {
        "senderPhoneNumber": phone,
        "eventType": kind,
        "eventId": f"{kind[0]}-{mid}-{n}",
        "messageId": mid,
        "sendTime": format_us(at_us),
        "agentId": agent,
    }


def user_text(agent: str, mid: str, phone: str, at_us: int) -> dict[str, Any]:
    return {"senderPhoneNumber": phone, "messageId": mid, "sendTime": format_us(at_us),
            "agentId": agent, "text": "hi"}  # fmt: skip


def typing(agent: str, event_id: str, phone: str, at_us: int) -> dict[str, Any]:
    return {"senderPhoneNumber": phone, "eventType": "IS_TYPING", "eventId": event_id,
            "sendTime": format_us(at_us), "agentId": agent}  # fmt: skip


def _ok(resp: Any) -> None:
    assert resp.status_code == 200, resp.get_data(as_text=True)


def seed_agent_a(client: Any, t0: int) -> None:
    """A's traffic: sent records, receipts (one READ only), a user message, an event."""
    _ok(send(client, [sent_record(AGENT_A, f"a-m{i}", PHONE_A, t0 + i) for i in range(3)], KEY_A))
    _ok(webhook(client, receipt(AGENT_A, "a-m0", PHONE_A, "DELIVERED", t0 + 1000), TOKEN_A))
    _ok(webhook(client, receipt(AGENT_A, "a-m0", PHONE_A, "READ", t0 + 2000), TOKEN_A))
    _ok(push(client, receipt(AGENT_A, "a-m1", PHONE_A, "DELIVERED", t0 + 3000), PUSH_A))
    # A receipt that arrived before its sent record: it owns a-m9 for A already.
    _ok(webhook(client, receipt(AGENT_A, "a-m9", PHONE_A, "READ", t0 + 4000), TOKEN_A))
    _ok(webhook(client, user_text(AGENT_A, "a-u0", PHONE_A, t0 + 5000), TOKEN_A))
    _ok(webhook(client, typing(AGENT_A, "ev-1", PHONE_A, t0 + 6000), TOKEN_A))


@dataclass(frozen=True)
class Attack:
    name: str
    run: Callable[[Any, int], Any]  # (client, t0) -> response
    status: int
    body: dict[str, Any] | None = None  # the exact JSON answer, when it is fixed
    error: str | None = None  # a phrase the error names


CONFLICT = {"stored": 0, "duplicate": 0, "conflict": 1}
EARLIER = -HOUR_US  # earlier than anything A stored: "earliest wins" would take it
ATTACKS = [
    # Wrong-agent token or key: the credential is not bound to the agent it names.
    Attack("webhook: READ for A's message, signed with B's token",
           lambda c, t: webhook(c, receipt(AGENT_A, "a-m1", PHONE_B, "READ", t + EARLIER), TOKEN_B),
           403, error="agentId names an agent this client token is not bound to"),
    Attack("webhook: DELIVERED for A's message, signed with B's token",
           lambda c, t: webhook(c, receipt(AGENT_A, "a-m2", PHONE_B, "DELIVERED", t), TOKEN_B),
           403, error="client token is not bound"),
    Attack("webhook: a user message as A, signed with B's token",
           lambda c, t: webhook(c, user_text(AGENT_A, "b-new", PHONE_B, t), TOKEN_B),
           403, error="client token is not bound"),
    Attack("pubsub: READ for A's message with B's push token",
           lambda c, t: push(c, receipt(AGENT_A, "a-m1", PHONE_B, "READ", t + EARLIER), PUSH_B),
           403, error="push token is not bound"),
    Attack("agent-messages: A's sent record with B's key",
           lambda c, t: send(c, [sent_record(AGENT_A, "a-m0", PHONE_B, t + EARLIER)], KEY_B),
           403, error="agentId names an agent this API key is not bound to"),
    Attack("agent-messages: a batch of B's with one item naming A",
           lambda c, t: send(c, [sent_record(AGENT_B, "b-x0", PHONE_B, t),
                                 sent_record(AGENT_A, "a-x1", PHONE_B, t)], KEY_B),
           403, error="agentMessages[1].agentId"),
    # Another agent's messageId, under B's own agentId: the id belongs to A.
    Attack("agent-messages: A's messageId as B's sent record",
           lambda c, t: send(c, [sent_record(AGENT_B, "a-m0", PHONE_B, t + EARLIER)], KEY_B),
           409, error="messageId already belongs to another agent: a-m0"),
    Attack("agent-messages: A's receipt-only messageId as B's sent record",
           lambda c, t: send(c, [sent_record(AGENT_B, "a-m9", PHONE_B, t + EARLIER)], KEY_B),
           409, error="a-m9"),
    Attack("agent-messages: a batch of new B messages with one of A's ids",
           lambda c, t: send(c, [sent_record(AGENT_B, "b-y0", PHONE_B, t),
                                 sent_record(AGENT_B, "a-m2", PHONE_B, t),
                                 sent_record(AGENT_B, "b-y1", PHONE_B, t)], KEY_B),
           409, error="another agent: a-m2; nothing from this request was stored"),
    Attack("agent-messages: A's messageId as B's, with a key valid for any agent",
           lambda c, t: send(c, [sent_record(AGENT_B, "a-m1", PHONE_B, t + EARLIER)], KEY_ANY),
           409, error="a-m1"),
    Attack("agent-messages: A's id, another user, sendTime 2000-01-01 (the reported attack)",
           lambda c, t: send(c, [sent_record(AGENT_B, "a-m0", PHONE_B, Y2000_US)], KEY_B),
           400, error="sendTime is older than RETENTION_DAYS"),
    Attack("webhook: DELIVERED for A's message as B",
           lambda c, t: webhook(c, receipt(AGENT_B, "a-m2", PHONE_B, "DELIVERED", t - 1), TOKEN_B),
           200, body=CONFLICT),
    Attack("webhook: READ for A's message as B",
           lambda c, t: webhook(c, receipt(AGENT_B, "a-m0", PHONE_B, "READ", t + EARLIER), TOKEN_B),
           200, body=CONFLICT),
    Attack("webhook: READ for A's receipt-only message as B",
           lambda c, t: webhook(c, receipt(AGENT_B, "a-m9", PHONE_B, "READ", t + EARLIER), TOKEN_B),
           200, body=CONFLICT),
    Attack("webhook: READ for A's message as B, with a token valid for any agent",
           lambda c, t: webhook(c, receipt(AGENT_B, "a-m1", PHONE_B, "READ", t - 1), TOKEN_ANY),
           200, body=CONFLICT),
    Attack("webhook: A's user messageId as B's user message",
           lambda c, t: webhook(c, user_text(AGENT_B, "a-u0", PHONE_B, t + EARLIER), TOKEN_B),
           200, body=CONFLICT),
    Attack("pubsub: READ for A's message as B",
           lambda c, t: push(c, receipt(AGENT_B, "a-m0", PHONE_B, "READ", t + EARLIER), PUSH_B),
           200, body=CONFLICT),
]  # fmt: skip


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_no_cross_agent_attempt_changes_a_byte(ingest: Any, attack: Attack) -> None:
    t0 = now_us() - 24 * HOUR_US
    seed_agent_a(ingest, t0)
    before = stored_bytes()
    resp = attack.run(ingest, t0)
    assert resp.status_code == attack.status, resp.get_data(as_text=True)
    if attack.body is not None:
        assert resp.get_json() == attack.body
    if attack.error is not None:
        assert attack.error in resp.get_json()["error"]
        assert AGENT_A not in resp.get_json()["error"] or attack.status == 403
    assert stored_bytes() == before
    # B's own traffic still works afterwards, and A's data is still A's.
    _ok(send(ingest, [sent_record(AGENT_B, "b-own", PHONE_B, t0)], KEY_B))
    own = webhook(ingest, receipt(AGENT_A, "a-m2", PHONE_A, "READ", t0 + 9000), TOKEN_A)
    assert own.get_json() == {"stored": 1, "duplicate": 0}


def test_seeded_interleaving_of_real_traffic_and_attacks(ingest: Any, soak: bool) -> None:
    """Both agents send real traffic; between every two steps, the other agent
    attacks something already stored. No attack changes a byte."""
    seed = 20261201
    print(f"seed {seed}")
    rng = random.Random(seed)
    rounds = 400 if soak else 40
    t0 = now_us() - 48 * HOUR_US
    agents = {
        AGENT_A: {"token": TOKEN_A, "key": KEY_A, "push": PUSH_A, "phone": PHONE_A},
        AGENT_B: {"token": TOKEN_B, "key": KEY_B, "push": PUSH_B, "phone": PHONE_B},
    }
    owned: dict[str, list[str]] = {AGENT_A: [], AGENT_B: []}
    users: dict[str, list[str]] = {AGENT_A: [], AGENT_B: []}
    attacks = 0
    for step in range(rounds):
        me = rng.choice((AGENT_A, AGENT_B))
        cred = agents[me]
        at = t0 + step * 60_000_000
        # A real step of the agent's own traffic.
        choice = rng.random()
        if choice < 0.4 or not owned[me]:
            mid = f"{me[0]}-{step}"
            _ok(send(ingest, [sent_record(me, mid, cred["phone"], at)], cred["key"]))
            owned[me].append(mid)
        elif choice < 0.8:
            kind = rng.choice(("DELIVERED", "READ"))
            route = rng.choice((webhook, push))
            secret = cred["token"] if route is webhook else cred["push"]
            mid = rng.choice(owned[me])
            _ok(route(ingest, receipt(me, mid, cred["phone"], kind, at, step), secret))
        else:
            uid = f"{me[0]}-u{step}"
            _ok(webhook(ingest, user_text(me, uid, cred["phone"], at), cred["token"]))
            users[me].append(uid)
        # The other agent attacks something of this one's.
        other = AGENT_B if me == AGENT_A else AGENT_A
        ocred = agents[other]
        phone, token = ocred["phone"], ocred["token"]
        target = rng.choice(owned[me] + users[me])
        before = stored_bytes()
        early = t0 - rng.randrange(1, 3600) * 1_000_000
        how = rng.randrange(5)
        if target in users[me]:
            resp = webhook(ingest, user_text(other, target, ocred["phone"], early), ocred["token"])
            expected = 200
        elif how == 0:
            resp = send(ingest, [sent_record(other, target, ocred["phone"], early)], ocred["key"])
            expected = 409
        elif how == 1:
            batch = [sent_record(other, f"{other[0]}-fresh-{step}", ocred["phone"], at),
                     sent_record(other, target, ocred["phone"], early)]  # fmt: skip
            resp = send(ingest, batch, ocred["key"])
            expected = 409
        elif how == 2:
            kind = rng.choice(("DELIVERED", "READ"))
            resp = webhook(ingest, receipt(other, target, phone, kind, early), token)
            expected = 200
        elif how == 3:
            resp = push(ingest, receipt(other, target, phone, "READ", early), ocred["push"])
            expected = 200
        else:  # naming the owner with the attacker's credential
            resp = webhook(ingest, receipt(me, target, phone, "READ", early), token)
            expected = 403
        assert resp.status_code == expected, (step, how, resp.get_data(as_text=True))
        if expected == 200:
            assert resp.get_json() == CONFLICT
        assert stored_bytes() == before, f"step {step}: attack {how} on {target} changed storage"
        attacks += 1
    assert attacks == rounds
