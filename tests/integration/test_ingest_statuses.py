"""Every route and status of ingest through the functions-framework app and the emulator.

Each rejected request is checked to have stored nothing, and each request to
have written exactly one JSON log line.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from rbm_analytics.core import clients
from rbm_analytics.ingest import store
from rbm_analytics_dev.local import emulators

from tests.integration.ingest_support import (
    WEBHOOK_SAMPLES,
    agent_messages,
    all_documents,
    assert_nothing_stored,
    log_entries,
    request_logs,
    webhook,
)
from tests.support import (
    AGENT_KEY,
    CLIENT_TOKEN,
    REPO_ROOT,
    bearer,
    envelope,
    rbm_sample,
    rbm_sample_bytes,
    signed_webhook,
)

READ_MESSAGE = "6f1c2b9e-4a3d-4c6e-9b7a-1d2e3f405162"
EXPECTED_DOCUMENT = {
    "user_event_delivered": (store.AGENT_MESSAGES, READ_MESSAGE),
    "user_event_read": (store.AGENT_MESSAGES, READ_MESSAGE),
    "user_event_is_typing": (store.USER_EVENTS, None),
    "server_event_ttl_revoked": (store.USER_EVENTS, None),
    "user_message_text": (store.USER_MESSAGES, "MsG9hJ8kL7zX6cV5bN4mQ3"),
    "user_message_text_eventid": (store.USER_MESSAGES, "MsE3rT4yU5iO6pA7sD8fG9"),
    "user_message_file": (store.USER_MESSAGES, "MsF5gH6jK7lZ8xC9vB0nM1"),
    "user_message_location": (store.USER_MESSAGES, "MsL2kJ3hG4fD5sA6qW7eR8"),
    "user_message_suggestion_reply": (store.USER_MESSAGES, "MsP1oI2uY3tR4eW5qA6sD7"),
    "user_message_suggestion_action": (store.USER_MESSAGES, "MsA9sD8fG7hJ6kL5zX4cV3"),
}


def _error(resp: Any) -> str:
    assert resp.content_type == "application/json"
    body = resp.get_json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str) and body["error"]
    return str(body["error"])


# --------------------------------------------------------------------------
# 200
# --------------------------------------------------------------------------
@pytest.mark.parametrize("sample", WEBHOOK_SAMPLES)
def test_webhook_sample_stored_then_duplicate(
    ingest_client: Any, sample: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = webhook(ingest_client, sample)
    assert first.status_code == 200, first.get_json()
    assert first.content_type == "application/json"
    assert first.get_json() == {"stored": 1, "duplicate": 0}
    second = webhook(ingest_client, sample)
    assert second.get_json() == {"stored": 0, "duplicate": 1}

    collection, doc_id = EXPECTED_DOCUMENT[sample]
    docs = all_documents()
    assert sum(len(d) for d in docs.values()) == 1
    (stored_id,) = docs[collection]
    if doc_id is not None:
        assert stored_id == doc_id
    else:
        payload = rbm_sample(sample)
        assert docs[collection][stored_id]["event_id"] == payload["eventId"]
        assert docs[collection][stored_id]["event_type"] == payload["eventType"]

    logs = request_logs(capsys)
    assert [(e["status"], e["stored"], e["duplicate"]) for e in logs] == [(200, 1, 0), (200, 0, 1)]
    assert all(e["severity"] == "INFO" and e["route"] == "webhook" for e in logs)


def test_user_message_documents(ingest_client: Any) -> None:
    for sample in WEBHOOK_SAMPLES:
        if sample.startswith("user_message"):
            assert webhook(ingest_client, sample).status_code == 200
    docs = all_documents()[store.USER_MESSAGES]
    kinds = {doc_id: (d["kind"], d["postback_data"], d["mime_type"]) for doc_id, d in docs.items()}
    assert kinds == {
        "MsG9hJ8kL7zX6cV5bN4mQ3": ("text", None, None),
        "MsE3rT4yU5iO6pA7sD8fG9": ("text", None, None),
        "MsF5gH6jK7lZ8xC9vB0nM1": ("file", None, "image/jpeg"),
        "MsL2kJ3hG4fD5sA6qW7eR8": ("location", None, None),
        "MsP1oI2uY3tR4eW5qA6sD7": ("suggestion_reply", "track_order", None),
        "MsA9sD8fG7hJ6kL5zX4cV3": ("suggestion_action", "open_map", None),
    }
    text = docs["MsG9hJ8kL7zX6cV5bN4mQ3"]
    assert text["event_at_us"] == 1_767_377_600_734_000  # 2026-01-02T18:13:20.734Z
    # Without sendTime the event time is the time of arrival.
    eventid = docs["MsE3rT4yU5iO6pA7sD8fG9"]
    assert eventid["event_at_us"] == eventid["received_at_us"]
    assert {d["user_key"] for d in docs.values()} == {text["user_key"]}
    assert len(text["user_key"]) == 64


def test_receipts_and_send_meet_in_one_document(ingest_client: Any) -> None:
    assert webhook(ingest_client, "user_event_read").get_json() == {"stored": 1, "duplicate": 0}
    assert webhook(ingest_client, "user_event_delivered").get_json() == {
        "stored": 1,
        "duplicate": 0,
    }
    resp = agent_messages(ingest_client, "agent_message")
    assert resp.get_json() == {"stored": 1, "duplicate": 0}
    doc = all_documents()[store.AGENT_MESSAGES][READ_MESSAGE]
    assert doc["sent_at_us"] == 1_767_259_800_123_000
    assert doc["delivered_at_us"] == 1_767_259_804_512_000
    assert doc["read_at_us"] == 1_767_377_565_001_000
    assert (doc["agent_id"], doc["content_type"], doc["traffic_type"]) == (
        "acme-agent",
        "text",
        "TRANSACTION",
    )
    assert doc["expire_at"] > doc["updated_at"]


def test_earlier_receipt_wins_whatever_the_order(ingest_client: Any) -> None:
    late = rbm_sample("user_event_read") | {"sendTime": "2026-01-05T00:00:00Z", "eventId": "e2"}
    early = rbm_sample("user_event_read")
    assert webhook(ingest_client, json.dumps(late).encode()).get_json()["stored"] == 1
    # The earlier READ changes what is kept: stored, not a duplicate.
    assert webhook(ingest_client, json.dumps(early).encode()).get_json()["stored"] == 1
    doc = all_documents()[store.AGENT_MESSAGES][READ_MESSAGE]
    assert doc["read_at_us"] == 1_767_377_565_001_000
    # A later one changes nothing.
    assert webhook(ingest_client, json.dumps(late).encode()).get_json()["duplicate"] == 1
    assert all_documents()[store.AGENT_MESSAGES][READ_MESSAGE] == doc


def test_agent_message_batch_counts(ingest_client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    batch = rbm_sample("agent_messages_batch")
    single = rbm_sample("agent_message")
    assert agent_messages(ingest_client, batch).get_json() == {"stored": 3, "duplicate": 0}
    # One new message, one already stored, and the new one repeated in the batch.
    mixed = {"agentMessages": [single, batch["agentMessages"][0], single]}
    assert agent_messages(ingest_client, mixed).get_json() == {"stored": 1, "duplicate": 2}
    assert len(all_documents()[store.AGENT_MESSAGES]) == 4
    logs = request_logs(capsys)
    assert [(e["route"], e["records"], e["stored"], e["duplicate"]) for e in logs] == [
        ("agent-messages", 3, 3, 0),
        ("agent-messages", 3, 1, 2),
    ]


def test_full_batch_of_500_in_one_request(ingest_client: Any) -> None:
    item = rbm_sample("agent_message")
    items = [item | {"name": f"phones/+12223334444/agentMessages/msg-{i:03d}"} for i in range(500)]
    resp = agent_messages(ingest_client, {"agentMessages": items})
    assert resp.get_json() == {"stored": 500, "duplicate": 0}
    assert len(all_documents()[store.AGENT_MESSAGES]) == 500


def test_agent_launch_event_is_acknowledged_not_stored(
    ingest_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    launch = {
        "eventId": "launch-1",
        "agentId": "acme_4fpd1psz_agent@rbm.goog",
        "oldLaunchState": "LAUNCH_STATE_PENDING",
        "newLaunchState": "LAUNCH_STATE_LAUNCHED",
        "sendTime": "2026-01-01T00:00:00Z",
    }
    resp = webhook(ingest_client, json.dumps(launch).encode())
    assert resp.status_code == 200
    assert resp.get_json() == {"stored": 0, "duplicate": 0, "ignored": 1}
    unsigned = ingest_client.post("/", data=signed_webhook(launch)[0], headers={})
    assert unsigned.status_code == 401
    assert_nothing_stored()
    logs = request_logs(capsys)
    assert [(e["status"], e.get("outcome"), e.get("kind")) for e in logs] == [
        (200, "ignored", "AGENT_LAUNCH_EVENT"),
        (401, "rejected", None),
    ]


# --------------------------------------------------------------------------
# Handshake
# --------------------------------------------------------------------------
def test_handshake_ok_and_forbidden(ingest_client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ok = ingest_client.post("/", json={"clientToken": CLIENT_TOKEN, "secret": "s3cr3t-ü"})
    assert ok.status_code == 200
    assert ok.content_type.startswith("text/plain")
    assert ok.data.decode() == "s3cr3t-ü"
    bad = ingest_client.post("/", json={"clientToken": "unknown", "secret": "x"})
    assert bad.status_code == 403
    assert "clientToken" in _error(bad)
    malformed = ingest_client.post("/", json={"clientToken": CLIENT_TOKEN})
    assert malformed.status_code == 400
    assert "secret" in _error(malformed)
    assert_nothing_stored()
    logs = request_logs(capsys)
    assert [(e["route"], e["status"]) for e in logs] == [
        ("handshake", 200),
        ("handshake", 403),
        ("webhook", 400),
    ]
    assert "s3cr3t" not in json.dumps(logs)


# --------------------------------------------------------------------------
# 400
# --------------------------------------------------------------------------
def _webhook_raw(client: Any, data: bytes, body: bytes | None = None) -> Any:
    signed_body, headers = signed_webhook(data)
    return client.post("/", data=signed_body if body is None else body, headers=headers)


BAD_WEBHOOK_BODIES = [
    (b"not json", "request body is not valid JSON"),
    (b"", "request body is not valid JSON"),
    (b"[1, 2, 3]", "request body must be a JSON object"),
    (b"42", "request body must be a JSON object"),
    (b'"text"', "request body must be a JSON object"),
    (b'{"message": {"data": "%%%"}}', "message.data is not valid base64"),
    (b'{"message": {}}', "message.data is missing"),
    (b'{"subscription": "x"}', "message must be a JSON object"),
]


@pytest.mark.parametrize(("body", "expected"), BAD_WEBHOOK_BODIES)
def test_webhook_bad_envelope(ingest_client: Any, body: bytes, expected: str) -> None:
    resp = ingest_client.post("/", data=body, headers={"X-Goog-Signature": "AAAA"})
    assert resp.status_code == 400
    assert expected in _error(resp)
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"not json", "message.data is not valid JSON"),
        (b"[1]", "message.data must be a JSON object"),
        (b"12345678901234567890", "message.data must be a JSON object"),
        (b'{"agentId": "a"}', "neither a user event"),
        (b'{"eventType": "READ", "agentId": "acme"}', "senderPhoneNumber"),
    ],
)
def test_webhook_signed_but_bad_payload(ingest_client: Any, data: bytes, expected: str) -> None:
    resp = _webhook_raw(ingest_client, data)
    assert resp.status_code == 400
    assert expected in _error(resp)
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"agentId": None}, "agentId"),
        ({"messageId": "no/slash"}, "messageId"),
        ({"senderPhoneNumber": "0044 20 7946 0000"}, "senderPhoneNumber"),
        ({"sendTime": "2026-01-02"}, "sendTime"),
    ],
)
def test_webhook_invalid_field_is_named(
    ingest_client: Any, change: dict[str, Any], field: str
) -> None:
    resp = webhook(ingest_client, rbm_sample("user_event_read") | change)
    assert resp.status_code == 400
    message = _error(resp)
    assert message.startswith(field)
    assert "0044" not in message
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{", "request body is not valid JSON"),
        (b"[]", "request body must be a JSON object"),
        (b"3.5", "request body must be a JSON object"),
        (b'{"agentMessages": []}', "agentMessages must be a non-empty array"),
        (
            json.dumps({"agentMessages": [rbm_sample("agent_message")] * 501}).encode(),
            "at most 500",
        ),
        (
            json.dumps(rbm_sample("agent_message") | {"name": "bad"}).encode(),
            "name must look like",
        ),
    ],
)
def test_agent_messages_bad_body(ingest_client: Any, body: bytes, expected: str) -> None:
    resp = ingest_client.post("/agent-messages", data=body, headers=bearer())
    assert resp.status_code == 400
    assert expected in _error(resp)
    assert_nothing_stored()


def test_one_bad_item_rejects_the_whole_batch(ingest_client: Any) -> None:
    batch = rbm_sample("agent_messages_batch")
    batch["agentMessages"][1]["phoneNumber"] = "15556667777"
    resp = agent_messages(ingest_client, batch)
    assert resp.status_code == 400
    assert _error(resp).startswith("agentMessages[1]: phoneNumber")
    assert "15556667777" not in resp.get_data(as_text=True)
    assert_nothing_stored()


# --------------------------------------------------------------------------
# 401
# --------------------------------------------------------------------------
def test_webhook_signature_missing_or_wrong(ingest_client: Any) -> None:
    data = rbm_sample_bytes("user_message_text")
    body, headers = signed_webhook(data)
    cases = {
        "missing": {},
        "empty": {"X-Goog-Signature": ""},
        "not base64": {"X-Goog-Signature": "***"},
        "wrong token": signed_webhook(data, "wrong-token")[1],
        "other data": signed_webhook(data + b" ")[1],
    }
    for name, case in cases.items():
        resp = ingest_client.post("/", data=body, headers=case)
        assert resp.status_code == 401, name
        assert "X-Goog-Signature" in _error(resp), name
    assert_nothing_stored()
    assert ingest_client.post("/", data=body, headers=headers).status_code == 200


def test_signature_is_checked_before_the_payload(ingest_client: Any) -> None:
    # An unsigned request learns nothing about what would have been wrong with it.
    resp = ingest_client.post("/", data=envelope(b'{"agentId": 5}'), headers={})
    assert resp.status_code == 401


def test_agent_messages_bearer_missing_or_wrong(ingest_client: Any) -> None:
    body = json.dumps(rbm_sample("agent_message")).encode()
    for headers in (
        {},
        {"Authorization": ""},
        {"Authorization": AGENT_KEY},
        {"Authorization": f"Basic {base64.b64encode(AGENT_KEY.encode()).decode()}"},
        {"Authorization": "Bearer wrong"},
        bearer(AGENT_KEY + "x"),
    ):
        resp = ingest_client.post("/agent-messages", data=body, headers=headers)
        assert resp.status_code == 401, headers
        assert "Authorization" in _error(resp) or "API key" in _error(resp)
    assert_nothing_stored()


def test_webhook_signature_does_not_open_agent_messages(ingest_client: Any) -> None:
    data = json.dumps(rbm_sample("agent_message")).encode()
    _, headers = signed_webhook(data)
    resp = ingest_client.post("/agent-messages", data=data, headers=headers)
    assert resp.status_code == 401
    assert_nothing_stored()


# --------------------------------------------------------------------------
# 404, 405
# --------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/agent-message", "/+12223334444", "/webhook", "/a/b/c"])
def test_unknown_path_is_404(ingest_client: Any, path: str) -> None:
    body, headers = signed_webhook(rbm_sample_bytes("user_message_text"))
    resp = ingest_client.post(path, data=body, headers=headers)
    assert resp.status_code == 404
    message = _error(resp)
    assert "/agent-messages" in message
    assert "2223334444" not in message
    assert_nothing_stored()


def test_trailing_slash_reaches_the_route(ingest_client: Any) -> None:
    resp = ingest_client.post("/agent-messages/", data=b"{}", headers=bearer())
    assert resp.status_code == 400


@pytest.mark.parametrize("path", ["/", "/agent-messages"])
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_wrong_method_is_405_with_allow(ingest_client: Any, path: str, method: str) -> None:
    body, headers = signed_webhook(rbm_sample_bytes("user_message_text"))
    resp = ingest_client.open(path, method=method, data=body, headers={**headers, **bearer()})
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "POST"
    assert "POST" in _error(resp)
    assert_nothing_stored()


def test_head_is_405(ingest_client: Any) -> None:
    resp = ingest_client.head("/")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "POST"


# --------------------------------------------------------------------------
# 413
# --------------------------------------------------------------------------
def _padded_webhook(size: int) -> tuple[bytes, dict[str, str]]:
    body, headers = signed_webhook(rbm_sample_bytes("user_message_text"))
    assert len(body) <= size
    return body + b" " * (size - len(body)), headers  # JSON allows trailing whitespace


def test_body_at_the_limit_is_accepted_one_byte_more_is_413(
    ingest_client: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "2000")
    clients.reset()
    body, headers = _padded_webhook(2001)
    resp = ingest_client.post("/", data=body, headers=headers)
    assert resp.status_code == 413
    assert "2000" in _error(resp)
    assert_nothing_stored()
    body, headers = _padded_webhook(2000)
    assert ingest_client.post("/", data=body, headers=headers).status_code == 200
    logs = request_logs(capsys)
    assert [(e["route"], e["status"], e["severity"]) for e in logs] == [
        ("webhook", 413, "WARNING"),
        ("webhook", 200, "INFO"),
    ]


def test_413_on_agent_messages(ingest_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "300")
    clients.reset()
    resp = agent_messages(ingest_client, "agent_messages_batch")
    assert resp.status_code == 413
    assert_nothing_stored()


# --------------------------------------------------------------------------
# 503
# --------------------------------------------------------------------------
def test_storage_unreachable_is_503(
    ingest_client: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on this port: every connection is refused.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{emulators.free_port()}")
    monkeypatch.setenv("FIRESTORE_DEADLINE_SECONDS", "1")
    clients.reset()
    resp = webhook(ingest_client, "user_event_read")
    assert resp.status_code == 503
    assert "retry" in _error(resp)
    resp = agent_messages(ingest_client, "agent_messages_batch")
    assert resp.status_code == 503
    logs = request_logs(capsys)
    assert [(e["status"], e["severity"], e["stored"]) for e in logs] == [
        (503, "ERROR", 0),
        (503, "ERROR", 0),
    ]
    assert all(e.get("cause") for e in logs)  # the storage error's type, for on-call


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PHONE_HASH_KEY": ""}, "PHONE_HASH_KEY is not set"),
        ({"RBM_CLIENT_TOKENS": ""}, "RBM_CLIENT_TOKENS is not set"),
        ({"MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES must be an integer"),
        ({"GOOGLE_CLOUD_PROJECT": ""}, "GOOGLE_CLOUD_PROJECT is not set"),
        ({"FIRESTORE_DEADLINE_SECONDS": "-3"}, "FIRESTORE_DEADLINE_SECONDS must be positive"),
        # Short secrets: the setting is named, its value never appears.
        ({"PHONE_HASH_KEY": "short-phone-key"}, "PHONE_HASH_KEY is shorter than 32 bytes"),
        ({"AGENT_API_KEYS": "short-api-key"}, "AGENT_API_KEYS entry 1 is shorter than 32"),
    ],
)
def test_settings_errors_are_503_with_a_clear_message(
    ingest_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    expected: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clients.reset()
    resp = webhook(ingest_client, "user_event_read")
    assert resp.status_code == 503
    assert expected in _error(resp)
    (entry,) = request_logs(capsys)
    assert (entry["status"], entry["severity"]) == (503, "ERROR")
    assert expected in entry["error"]
    assert "short-" not in json.dumps(entry) + resp.get_data(as_text=True)
    assert_nothing_stored()


def test_settings_errors_are_logged_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import functions_framework

    monkeypatch.setenv("AGENT_API_KEYS", "short-api-key")
    clients.reset()
    functions_framework.create_app("ingest", str(REPO_ROOT / "functions" / "main.py"))
    (entry,) = log_entries(capsys)
    assert entry["severity"] == "ERROR"
    assert "AGENT_API_KEYS entry 1 is shorter than 32 characters" in entry["error"]
    assert "short-api-key" not in json.dumps(entry)


def test_missing_agent_api_keys_is_503(ingest_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_API_KEYS", "")
    clients.reset()
    resp = agent_messages(ingest_client, "agent_message")
    assert resp.status_code == 503
    assert "AGENT_API_KEYS is not set" in _error(resp)
    assert_nothing_stored()


# --------------------------------------------------------------------------
# Log lines
# --------------------------------------------------------------------------
def test_one_log_line_per_request(ingest_client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    webhook(ingest_client, "user_message_file")
    ingest_client.get("/")
    ingest_client.post("/nope", data=b"{}")
    agent_messages(ingest_client, "agent_messages_batch")
    ingest_client.post("/", data=b"{}", headers={})
    logs = request_logs(capsys)
    assert [(e["route"], e["status"], e["severity"]) for e in logs] == [
        ("webhook", 200, "INFO"),
        ("webhook", 405, "WARNING"),
        ("unknown", 404, "WARNING"),
        ("agent-messages", 200, "INFO"),
        ("webhook", 400, "WARNING"),
    ]
    for entry in logs:
        required = {"severity", "message", "route", "status", "latency_ms", "stored", "duplicate"}
        assert required <= set(entry)
        assert isinstance(entry["latency_ms"], int | float) and entry["latency_ms"] >= 0
        assert entry["time"].endswith("Z")
    assert logs[0]["kind"] == "user_message:file"
    assert logs[0]["agent_id"] == "acme-agent"
    assert (logs[3]["stored"], logs[3]["records"]) == (3, 3)
    assert logs[4]["outcome"] == "rejected"


# --------------------------------------------------------------------------
# Times that cannot be true
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("offset_s", "error"),
    [
        (6 * 60, "sendTime is more than 5 minutes after the time ingest received it"),
        (-91 * 86_400, "sendTime is older than RETENTION_DAYS (90 days)"),
    ],
)
def test_impossible_times_are_400_and_store_nothing(
    ingest_client: Any, monkeypatch: pytest.MonkeyPatch, offset_s: int, error: str
) -> None:
    from rbm_analytics.core.timeutil import format_us, now_us

    monkeypatch.setenv("RETENTION_DAYS", "90")
    clients.reset()
    when = format_us(now_us() + offset_s * 1_000_000)
    for sample in ("user_event_read", "user_message_text", "user_event_is_typing"):
        resp = webhook(ingest_client, _with_time(sample, when))
        assert resp.status_code == 400
        assert error in _error(resp)
    # A minute ago is fine.
    recent = format_us(now_us() - 60_000_000)
    batch = rbm_sample("agent_messages_batch")
    for item in batch["agentMessages"]:
        item["sendTime"] = recent
    batch["agentMessages"][2]["sendTime"] = when
    resp = agent_messages(ingest_client, batch)
    assert resp.status_code == 400
    assert f"agentMessages[2]: {error}" in _error(resp)
    assert_nothing_stored()
    resp = webhook(ingest_client, _with_time("user_event_read", recent))
    assert resp.get_json() == {"stored": 1, "duplicate": 0}


def _with_time(sample: str, send_time: str) -> bytes:
    return json.dumps(rbm_sample(sample) | {"sendTime": send_time}).encode()
