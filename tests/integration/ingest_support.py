"""Helpers for the ingest integration tests: requests, stored documents, log lines."""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

import pytest
from google.cloud import firestore
from rbm_analytics.core import collections

from tests.support import PROJECT, bearer, rbm_sample, rbm_sample_bytes, signed_webhook

WEBHOOK_SAMPLES = (
    "user_event_delivered",
    "user_event_read",
    "user_event_is_typing",
    "server_event_ttl_revoked",
    "user_message_text",
    "user_message_text_eventid",
    "user_message_file",
    "user_message_location",
    "user_message_suggestion_reply",
    "user_message_suggestion_action",
)
AGENT_SAMPLES = ("agent_message", "agent_messages_batch")

# Everything in the samples that identifies a user or says what they wrote.
PHONES = ("+12223334444", "+15556667777")
PRIVATE_VALUES = (
    *PHONES,
    *(p[1:] for p in PHONES),
    "When does my order arrive?",
    "thanks",
    "Show on map",
    "Track my order",
    "Your order has shipped.",
    "rcs.example.invalid",
    "https://",
    "receipt.jpg",
    "thumb.jpg",
    "37.422",
    "122.084",
    "depot",
)


def db() -> firestore.Client:
    return firestore.Client(project=PROJECT)


def all_documents() -> dict[str, dict[str, dict[str, Any]]]:
    """Every stored document, by collection and id."""
    client = db()
    return {
        name: {d.id: d.to_dict() or {} for d in client.collection(name).stream()}
        for name in collections.COLLECTIONS
    }


def stored_bytes() -> dict[str, bytes]:
    """Every collection exactly as Firestore serves it (REST JSON: every field and each
    document's update time), so "changed nothing" can be checked byte for byte."""
    host = os.environ["FIRESTORE_EMULATOR_HOST"]
    out = {}
    for name in collections.COLLECTIONS:
        url = (
            f"http://{host}/v1/projects/{PROJECT}/databases/(default)/documents/{name}"
            "?pageSize=10000&orderBy=__name__"
        )
        with urllib.request.urlopen(url, timeout=30) as resp:
            out[name] = resp.read()
    return out


def assert_nothing_stored() -> None:
    assert all_documents() == {name: {} for name in collections.COLLECTIONS}


def webhook(client: Any, sample: str | dict[str, Any] | bytes, **headers: str) -> Any:
    payload = rbm_sample_bytes(sample) if isinstance(sample, str) else sample
    body, signed = signed_webhook(payload)
    return client.post("/", data=body, headers={**signed, **headers})


def agent_messages(client: Any, body: Any) -> Any:
    data = json.dumps(rbm_sample(body) if isinstance(body, str) else body).encode()
    return client.post("/agent-messages", data=data, headers=bearer())


def log_entries(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The JSON log lines written since the last call; every stdout line must be one."""
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def request_logs(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [e for e in log_entries(capsys) if e.get("message") == "ingest request"]
