"""Privacy (docs/contract.md §2.4): no phone number, message text, file URI, file name or coordinate
reaches Firestore or the logs, whatever was sent."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from rbm_analytics.ingest import store

from tests.integration.ingest_support import (
    AGENT_SAMPLES,
    PHONES,
    PRIVATE_VALUES,
    WEBHOOK_SAMPLES,
    agent_messages,
    all_documents,
    log_entries,
    webhook,
)
from tests.support import PHONE_KEY, bearer, rbm_sample


def _send_everything(client: Any) -> None:
    for sample in WEBHOOK_SAMPLES:
        assert webhook(client, sample).status_code == 200, sample
    for sample in AGENT_SAMPLES:
        assert agent_messages(client, sample).status_code == 200, sample
    # Rejected requests carrying private values must not leak them either.
    text = rbm_sample("user_message_text")
    assert webhook(client, text | {"agentId": "bad id"}).status_code == 400
    assert webhook(client, text | {"senderPhoneNumber": "12223334444"}).status_code == 400
    assert webhook(client, text | {"sendTime": "+12223334444"}).status_code == 400
    loc = rbm_sample("user_message_location")
    loc["location"]["latitude"] = 137.422
    assert webhook(client, loc).status_code == 400
    bad_phone = rbm_sample("agent_message") | {"phoneNumber": "5556667777"}
    assert agent_messages(client, bad_phone).status_code == 400
    assert client.post("/+12223334444", data=b"{}", headers=bearer()).status_code == 404
    bad_sig = webhook(client, "user_message_file", **{"X-Goog-Signature": "AAAA"})
    assert bad_sig.status_code == 401


def _assert_clean(text: str) -> None:
    for value in PRIVATE_VALUES:
        assert value not in text, f"{value!r} leaked"


def test_nothing_private_is_stored_or_logged(
    ingest_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _send_everything(ingest_client)
    docs = all_documents()
    assert {name: len(d) for name, d in docs.items()} == {
        store.AGENT_MESSAGES: 4,
        store.USER_MESSAGES: 6,
        store.USER_EVENTS: 2,
    }
    _assert_clean(json.dumps(docs, default=str))
    entries = log_entries(capsys)
    assert len([e for e in entries if e["message"] == "ingest request"]) == 19
    _assert_clean(json.dumps(entries))


def test_users_are_keyed_by_hmac_of_their_number(ingest_client: Any) -> None:
    _send_everything(ingest_client)
    expected = {
        hmac.new(PHONE_KEY.encode(), p.encode(), hashlib.sha256).hexdigest() for p in PHONES
    }
    keys = {
        doc["user_key"]
        for docs in all_documents().values()
        for doc in docs.values()
        if "user_key" in doc
    }
    # Webhook events and the sent log give the same user the same key, so they join.
    assert keys == expected
    # A plain hash of the number (guessable from the number alone) is not what is stored.
    assert not keys & {hashlib.sha256(p.encode()).hexdigest() for p in PHONES}
