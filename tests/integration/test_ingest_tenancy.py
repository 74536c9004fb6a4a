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

from tests.integration.ingest_support import (
    all_documents,
    assert_nothing_stored,
    request_logs,
    stored_bytes,
)
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


# --------------------------------------------------------------------------
# A messageId belongs to its first agent
# --------------------------------------------------------------------------
MID = "6f1c2b9e-4a3d-4c6e-9b7a-1d2e3f405162"  # the samples' message


def _own_message(client: Any) -> dict[str, bytes]:
    """Agent A's sent record and receipts, stored; what storage looks like then."""
    assert _send(client, rbm_sample("agent_message"), KEY_A).status_code == 200
    for sample in ("user_event_delivered", "user_event_read"):
        assert _webhook(client, rbm_sample(sample), TOKEN_A).status_code == 200
    return stored_bytes()


def test_another_agents_message_id_as_a_sent_record_is_409(
    two_agents: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _own_message(two_agents)
    capsys.readouterr()
    # Agent B re-posts A's message id, for another user and an earlier time.
    forged = {
        "agentId": AGENT_B,
        "name": f"phones/+15556667777/agentMessages/{MID}",
        "sendTime": "2026-01-01T00:00:00Z",
    }
    resp = _send(two_agents, forged, KEY_B)
    assert resp.status_code == 409
    error = resp.get_json()["error"]
    assert MID in error and AGENT_A not in error  # which id, never whose
    assert stored_bytes() == before
    (entry,) = request_logs(capsys)
    assert (entry["status"], entry["severity"], entry["message_ids"]) == (409, "WARNING", [MID])


def test_a_batch_with_one_foreign_message_id_stores_nothing(two_agents: Any) -> None:
    before = _own_message(two_agents)
    batch = [_as(item, AGENT_B) for item in rbm_sample("agent_messages_batch")["agentMessages"]]
    batch.insert(1, _as(rbm_sample("agent_message"), AGENT_B))
    resp = _send(two_agents, {"agentMessages": batch}, KEY_B)
    assert resp.status_code == 409
    assert resp.get_json()["error"] == (
        f"messageId already belongs to another agent: {MID}; nothing from this request was stored"
    )
    assert stored_bytes() == before


@pytest.mark.parametrize("sample", ["user_event_delivered", "user_event_read"])
def test_another_agents_message_id_as_a_receipt_is_a_200_conflict(
    two_agents: Any, sample: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _own_message(two_agents)
    capsys.readouterr()
    # Earlier than A's own receipt, so a blind "earliest wins" would have taken it.
    forged = _as(rbm_sample(sample), AGENT_B) | {"sendTime": "2026-01-01T09:30:01Z"}
    resp = _webhook(two_agents, forged, TOKEN_B)
    assert resp.status_code == 200
    assert resp.get_json() == {"stored": 0, "duplicate": 0, "conflict": 1}
    assert stored_bytes() == before
    (entry,) = request_logs(capsys)
    assert (entry["severity"], entry["outcome"], entry["conflict"]) == ("WARNING", "conflict", 1)
    assert entry["message_ids"] == [MID]


def test_a_receipt_that_arrives_first_claims_the_message_for_its_agent(two_agents: Any) -> None:
    read = rbm_sample("user_event_read")
    assert _webhook(two_agents, read, TOKEN_A).get_json() == {"stored": 1, "duplicate": 0}
    before = stored_bytes()
    resp = _send(two_agents, _as(rbm_sample("agent_message"), AGENT_B), KEY_B)
    assert resp.status_code == 409
    assert stored_bytes() == before
    # Its own agent's sent record joins the receipt.
    resp = _send(two_agents, rbm_sample("agent_message"), KEY_A)
    assert resp.get_json() == {"stored": 1, "duplicate": 0}
    doc = all_documents()["agent_messages"][MID]
    assert (doc["agent_id"], doc["read_at_us"]) == (AGENT_A, 1_767_377_565_001_000)


def test_one_batch_naming_one_id_for_two_agents_is_409(
    two_agents: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_API_KEYS", f"{KEY_A}:{AGENT_A}|{AGENT_B}")
    clients.reset()
    record = rbm_sample("agent_message")
    resp = _send(two_agents, {"agentMessages": [record, _as(record, AGENT_B)]}, KEY_A)
    assert resp.status_code == 409
    assert MID in resp.get_json()["error"]
    assert_nothing_stored()


def test_another_agents_user_message_id_is_a_conflict(two_agents: Any) -> None:
    text = rbm_sample("user_message_text")
    assert _webhook(two_agents, text, TOKEN_A).get_json() == {"stored": 1, "duplicate": 0}
    before = stored_bytes()
    resp = _webhook(two_agents, _as(text, AGENT_B), TOKEN_B)
    assert resp.get_json() == {"stored": 0, "duplicate": 0, "conflict": 1}
    assert _webhook(two_agents, text, TOKEN_A).get_json() == {"stored": 0, "duplicate": 1}
    assert stored_bytes() == before


def test_a_duplicate_changes_nothing_at_all(two_agents: Any) -> None:
    before = _own_message(two_agents)
    assert _send(two_agents, rbm_sample("agent_message"), KEY_A).get_json() == {
        "stored": 0,
        "duplicate": 1,
    }
    for sample in ("user_event_delivered", "user_event_read", "user_event_is_typing"):
        resp = _webhook(two_agents, rbm_sample(sample), TOKEN_A)
        assert resp.get_json()["duplicate"] == (0 if sample == "user_event_is_typing" else 1)
    after = stored_bytes()
    # Byte for byte, update times included; only the new IS_TYPING event was added.
    assert {k: v for k, v in after.items() if k != "user_events"} == {
        k: v for k, v in before.items() if k != "user_events"
    }


def test_the_same_event_id_from_two_users_and_two_agents_is_three_events(
    two_agents: Any,
) -> None:
    typing = rbm_sample("user_event_is_typing")
    other_user = typing | {"senderPhoneNumber": "+15556667777"}
    sends = ((typing, TOKEN_A), (other_user, TOKEN_A), (_as(typing, AGENT_B), TOKEN_B))
    for payload, token in sends:
        assert _webhook(two_agents, payload, token).get_json() == {"stored": 1, "duplicate": 0}
    events = all_documents()["user_events"].values()
    assert len(events) == 3
    assert {e["event_id"] for e in events} == {typing["eventId"]}
    assert len({(e["agent_id"], e["user_key"]) for e in events}) == 3
    # Each is its own duplicate key: a repeat of any one is a duplicate.
    assert _webhook(two_agents, other_user, TOKEN_A).get_json() == {"stored": 0, "duplicate": 1}
