"""``POST /pubsub?token=…``: the agent's Pub/Sub push subscription, with the same rules as ``/``.

Bodies are the standard push envelope as Google documents it (camelCase and
snake_case ids, attributes, subscription); there is no signature, the URL's
token authenticates the push. Pub/Sub acknowledges on 2xx and redelivers on
anything else, so the statuses mean the same as for RBM's webhook.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from rbm_analytics.core import clients
from rbm_analytics.ingest import store
from rbm_analytics_dev.local.bot import DemoBot

from tests.integration.ingest_support import (
    WEBHOOK_SAMPLES,
    agent_messages,
    all_documents,
    assert_nothing_stored,
    request_logs,
)
from tests.support import (
    ACME_ONLY_PUSH_TOKEN,
    CLIENT_TOKEN,
    PUSH_TOKEN,
    PUSH_TOKENS,
    pubsub_push,
    rbm_sample_bytes,
)

READ_MESSAGE = "6f1c2b9e-4a3d-4c6e-9b7a-1d2e3f405162"


@pytest.fixture
def client(ingest_client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PUBSUB_PUSH_TOKENS", PUSH_TOKENS)
    clients.reset()
    return ingest_client


def push(client: Any, data: bytes, token: str | None = PUSH_TOKEN, **kw: Any) -> Any:
    query = "" if token is None else f"?token={token}"
    return client.post(
        f"/pubsub{query}",
        data=pubsub_push(data, **kw),
        headers={"Content-Type": "application/json"},
    )


@pytest.mark.parametrize("sample", WEBHOOK_SAMPLES)
def test_every_event_kind_is_stored_then_a_redelivery_is_a_duplicate(
    client: Any, sample: str
) -> None:
    data = rbm_sample_bytes(sample)
    first = push(client, data)
    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {"stored": 1, "duplicate": 0}
    # Pub/Sub redelivers with the same messageId; RBM may publish a copy with a new one.
    assert push(client, data).get_json() == {"stored": 0, "duplicate": 1}
    assert push(client, data, message_id=99).get_json() == {"stored": 0, "duplicate": 1}
    assert sum(len(d) for d in all_documents().values()) == 1


def test_same_event_through_push_and_webhook_is_stored_once(client: Any) -> None:
    from tests.integration.ingest_support import webhook

    assert push(client, rbm_sample_bytes("user_event_read")).status_code == 200
    assert webhook(client, "user_event_read").get_json() == {"stored": 0, "duplicate": 1}


def test_receipts_before_the_sent_record_in_any_order_count_once_it_arrives(client: Any) -> None:
    assert push(client, rbm_sample_bytes("user_event_read")).status_code == 200
    assert push(client, rbm_sample_bytes("user_event_delivered")).status_code == 200
    assert push(client, rbm_sample_bytes("user_event_read")).status_code == 200
    assert agent_messages(client, "agent_message").status_code == 200
    doc = all_documents()[store.AGENT_MESSAGES][READ_MESSAGE]
    assert doc["read_at_us"] == 1_767_377_565_001_000
    assert doc["delivered_at_us"] == 1_767_259_804_512_000
    assert doc["sent_at_us"] == 1_767_259_800_123_000


def test_missing_or_wrong_token_is_401_and_stores_nothing(
    client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    data = rbm_sample_bytes("user_message_text")
    missing = push(client, data, token=None)
    wrong = push(client, data, token="not-a-token")
    empty = push(client, data, token="")
    assert [missing.status_code, wrong.status_code, empty.status_code] == [401, 401, 401]
    assert "token" in missing.get_json()["error"]
    assert_nothing_stored()
    logs = request_logs(capsys)
    assert [(e["route"], e["status"]) for e in logs] == [("pubsub", 401)] * 3
    assert "not-a-token" not in json.dumps(logs)


def test_a_token_bound_to_other_agents_is_403_and_stores_nothing(client: Any) -> None:
    acme = rbm_sample_bytes("user_message_text")
    globex = acme.replace(b"acme-agent", b"globex-agent")
    assert push(client, globex, token=ACME_ONLY_PUSH_TOKEN).status_code == 403
    assert_nothing_stored()
    assert push(client, acme, token=ACME_ONLY_PUSH_TOKEN).status_code == 200
    # The same message id for another agent: acknowledged, not stored.
    conflict = {"stored": 0, "duplicate": 0, "conflict": 1}
    assert push(client, globex, token=PUSH_TOKEN).get_json() == conflict


def test_malformed_pushes_are_400_naming_the_field(client: Any) -> None:
    def raw(body: bytes) -> Any:
        return client.post(f"/pubsub?token={PUSH_TOKEN}", data=body)

    # A Pub/Sub message may carry attributes and no data at all.
    no_data = json.dumps({"message": {"attributes": {"a": "b"}, "messageId": "1"}}).encode()
    not_b64 = json.dumps({"message": {"data": "%%%", "messageId": "1"}}).encode()
    no_agent = base64.b64encode(b'{"senderPhoneNumber": "+12223334444", "text": "hi"}')
    bad_payload = json.dumps({"message": {"data": no_agent.decode()}}).encode()
    answers = [raw(b) for b in (b"{", no_data, not_b64, bad_payload)]
    assert [a.status_code for a in answers] == [400, 400, 400, 400]
    errors = [a.get_json()["error"] for a in answers]
    assert "JSON" in errors[0]
    assert "message.data" in errors[1] and "message.data" in errors[2]
    assert "agentId" in errors[3]
    assert_nothing_stored()


def test_not_post_is_405_and_unconfigured_tokens_are_503(
    ingest_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ingest_client.get(f"/pubsub?token={PUSH_TOKEN}").status_code == 405
    # No PUBSUB_PUSH_TOKENS: a deployment fault; Pub/Sub keeps the message and retries.
    resp = push(ingest_client, rbm_sample_bytes("user_message_text"))
    assert resp.status_code == 503
    assert "PUBSUB_PUSH_TOKENS" in resp.get_json()["error"]
    monkeypatch.setenv("PUBSUB_PUSH_TOKENS", "s3cr3tvalue:")  # an empty agent list
    clients.reset()
    resp = push(ingest_client, rbm_sample_bytes("user_message_text"), token="s3cr3tvalue")
    assert resp.status_code == 503
    assert "entry 1" in resp.get_json()["error"]
    assert "s3cr3tvalue" not in resp.get_json()["error"]
    assert_nothing_stored()


def test_a_push_is_relayed_like_a_webhook_request(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = DemoBot([CLIENT_TOKEN]).start()
    try:
        # A bot fed by Pub/Sub checks no signature (its own URL secret, if any).
        bot.status = 200
        monkeypatch.setenv("FORWARD_URL", bot.url)
        clients.reset()
        data = rbm_sample_bytes("user_event_read")
        assert push(client, data).status_code == 200
        (got,) = bot.deliveries
        assert got.body == pubsub_push(data)
        assert got.signature is None  # Pub/Sub signs nothing; the envelope goes as it came
        bot.status = 503
        assert push(client, data).status_code == 503
    finally:
        bot.stop()
