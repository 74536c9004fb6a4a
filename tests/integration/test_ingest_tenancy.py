"""Two agents on one deployment, each with credentials bound to it.

A credential that verifies but is not bound to the request's ``agentId`` gets
403 and stores nothing, a batch included; the same request with the agent's
own credential is stored.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rbm_analytics.core import clients

from tests.integration.ingest_support import all_documents, assert_nothing_stored, request_logs
from tests.support import (
    AGENT_A,
    AGENT_B,
    KEY_A,
    KEY_B,
    TOKEN_A,
    TOKEN_B,
    TWO_AGENT_ENV,
    bearer,
    rbm_sample,
    signed_webhook,
)


@pytest.fixture
def two_agents(ingest_client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in TWO_AGENT_ENV.items():
        monkeypatch.setenv(name, value)
    clients.reset()
    return ingest_client


def _webhook(client: Any, payload: dict[str, Any], token: str) -> Any:
    body, headers = signed_webhook(payload, token)
    return client.post("/", data=body, headers=headers)


def _send(client: Any, body: dict[str, Any], key: str) -> Any:
    return client.post("/agent-messages", data=json.dumps(body).encode(), headers=bearer(key))


def _as(payload: dict[str, Any], agent: str) -> dict[str, Any]:
    return {**payload, "agentId": agent}


WEBHOOK_SAMPLES = ("user_event_delivered", "user_event_read", "user_event_is_typing",
                   "user_message_text", "server_event_ttl_revoked")  # fmt: skip


@pytest.mark.parametrize("sample", WEBHOOK_SAMPLES)
def test_webhook_signed_with_another_agents_token_is_403(
    two_agents: Any, sample: str, capsys: pytest.CaptureFixture[str]
) -> None:
    resp = _webhook(two_agents, _as(rbm_sample(sample), AGENT_A), TOKEN_B)
    assert resp.status_code == 403
    assert resp.get_json() == {"error": "agentId names an agent this client token is not bound to"}
    assert_nothing_stored()
    (entry,) = request_logs(capsys)
    assert (entry["status"], entry["severity"], entry["outcome"]) == (403, "WARNING", "rejected")
    # Each agent's own token works.
    assert _webhook(two_agents, _as(rbm_sample(sample), AGENT_A), TOKEN_A).status_code == 200
    assert _webhook(two_agents, _as(rbm_sample(sample), AGENT_B), TOKEN_B).status_code == 200


def test_sent_record_with_another_agents_key_is_403(two_agents: Any) -> None:
    record = rbm_sample("agent_message")
    resp = _send(two_agents, _as(record, AGENT_A), KEY_B)
    assert resp.status_code == 403
    assert resp.get_json() == {"error": "agentId names an agent this API key is not bound to"}
    assert_nothing_stored()
    assert _send(two_agents, _as(record, AGENT_A), KEY_A).get_json() == {
        "stored": 1,
        "duplicate": 0,
    }


def test_a_batch_with_one_foreign_item_stores_nothing(two_agents: Any) -> None:
    batch = rbm_sample("agent_messages_batch")
    items = [_as(item, AGENT_B) for item in batch["agentMessages"]]
    items[1] = _as(items[1], AGENT_A)
    resp = _send(two_agents, {"agentMessages": items}, KEY_B)
    assert resp.status_code == 403
    assert resp.get_json() == {
        "error": "agentMessages[1].agentId names an agent this API key is not bound to"
    }
    assert_nothing_stored()


def test_a_key_bound_to_both_agents_writes_for_both(
    two_agents: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_API_KEYS", f"{KEY_A}:{AGENT_A}|{AGENT_B}")
    clients.reset()
    batch = rbm_sample("agent_messages_batch")
    items = [_as(item, AGENT_B) for item in batch["agentMessages"]]
    items[1] = _as(items[1], AGENT_A)
    resp = _send(two_agents, {"agentMessages": items}, KEY_A)
    assert resp.get_json() == {"stored": 3, "duplicate": 0}
    agents = {d["agent_id"] for d in all_documents()["agent_messages"].values()}
    assert agents == {AGENT_A, AGENT_B}


def test_handshake_accepts_a_bound_token(two_agents: Any) -> None:
    resp = two_agents.post("/", json={"clientToken": TOKEN_B, "secret": "s3cr3t"})
    assert (resp.status_code, resp.get_data(as_text=True)) == (200, "s3cr3t")
    resp = two_agents.post("/", json={"clientToken": f"{TOKEN_B}:{AGENT_B}", "secret": "x"})
    assert resp.status_code == 403
