"""Every route and status of ingest, through the real handler and the Firestore emulator."""

from __future__ import annotations

import json
from typing import Any

from google.cloud import firestore

from tests.support import (
    AGENT_KEY,
    CLIENT_TOKEN,
    OTHER_CLIENT_TOKEN,
    PROJECT,
    bearer,
    rbm_sample,
    rbm_sample_bytes,
    signed_webhook,
)


def _db() -> firestore.Client:
    return firestore.Client(project=PROJECT)


def _docs(collection: str) -> dict[str, dict[str, Any]]:
    return {d.id: d.to_dict() for d in _db().collection(collection).stream()}


def _post(client: Any, body: bytes, headers: dict[str, str], path: str = "/") -> Any:
    return client.post(path, data=body, headers=headers)


def test_read_receipt_is_stored_on_its_agent_message(ingest_client: Any) -> None:
    body, headers = signed_webhook(rbm_sample_bytes("user_event_read"))
    resp = _post(ingest_client, body, headers)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"stored": 1, "duplicate": 0}
    doc = _docs("agent_messages")["6f1c2b9e-4a3d-4c6e-9b7a-1d2e3f405162"]
    assert doc["read_at_us"] == 1767377565001000  # 2026-01-02T18:12:45.001Z
    assert "sent_at_us" not in doc  # the sent record has not arrived yet


def test_same_event_twice_is_a_duplicate(ingest_client: Any) -> None:
    body, headers = signed_webhook(rbm_sample_bytes("user_event_delivered"))
    assert _post(ingest_client, body, headers).get_json() == {"stored": 1, "duplicate": 0}
    assert _post(ingest_client, body, headers).get_json() == {"stored": 0, "duplicate": 1}


def test_rotated_token_is_accepted(ingest_client: Any) -> None:
    body, headers = signed_webhook(rbm_sample_bytes("user_message_text"), OTHER_CLIENT_TOKEN)
    assert _post(ingest_client, body, headers).status_code == 200
    (doc,) = _docs("user_messages").values()
    assert doc["kind"] == "text"
    assert "When does" not in json.dumps(doc, default=str)


def test_wrong_signature_is_401_and_stores_nothing(ingest_client: Any) -> None:
    body, headers = signed_webhook(rbm_sample_bytes("user_message_text"), "not-a-token")
    resp = _post(ingest_client, body, headers)
    assert resp.status_code == 401
    assert "X-Goog-Signature" in resp.get_json()["error"]
    assert _docs("user_messages") == {}


def test_handshake(ingest_client: Any) -> None:
    ok = _post(
        ingest_client,
        json.dumps({"clientToken": CLIENT_TOKEN, "secret": "s3"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert ok.status_code == 200
    assert ok.data == b"s3"
    assert ok.content_type.startswith("text/plain")
    bad = _post(ingest_client, json.dumps({"clientToken": "nope", "secret": "s3"}).encode(), {})
    assert bad.status_code == 403


def test_agent_messages_batch(ingest_client: Any) -> None:
    body = json.dumps(rbm_sample("agent_messages_batch")).encode()
    resp = _post(ingest_client, body, bearer(), "/agent-messages")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"stored": 3, "duplicate": 0}
    docs = _docs("agent_messages")
    assert {d["content_type"] for d in docs.values()} == {"rich_card", "carousel", "file"}
    again = _post(ingest_client, body, bearer(), "/agent-messages")
    assert again.get_json() == {"stored": 0, "duplicate": 3}


def test_agent_messages_wrong_key(ingest_client: Any) -> None:
    body = json.dumps(rbm_sample("agent_message")).encode()
    assert _post(ingest_client, body, bearer("wrong"), "/agent-messages").status_code == 401
    assert _post(ingest_client, body, {}, "/agent-messages").status_code == 401
    assert _docs("agent_messages") == {}
    assert AGENT_KEY  # the configured key is a different one
