"""Shared test helpers: fixtures by name, signed webhook requests, settings."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from rbm_analytics_dev.local import sender

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[1]

PROJECT = "demo-rbm-test"
CLIENT_TOKEN = "TEST_CLIENT_TOKEN"
OTHER_CLIENT_TOKEN = "ROTATED_CLIENT_TOKEN"
AGENT_KEY = "test-agent-key-0123456789abcdef0123"  # 32+ characters, as required
PHONE_KEY = "test-phone-hash-key-0123456789abcdef"  # 32+ bytes, as required

# A deployment shared by two agents, each with credentials bound to it.
AGENT_A, AGENT_B = "acme-agent", "bravo-agent"
TOKEN_A, TOKEN_B = "client-token-of-acme", "client-token-of-bravo"
KEY_A, KEY_B = "api-key-of-acme-agent-0123456789ab", "api-key-of-bravo-agent-0123456789a"
TWO_AGENT_ENV = {
    "RBM_CLIENT_TOKENS": f"{TOKEN_A}:{AGENT_A},{TOKEN_B}:{AGENT_B}",
    "AGENT_API_KEYS": f"{KEY_A}:{AGENT_A},{KEY_B}:{AGENT_B}",
}

BASE_ENV = {
    "GOOGLE_CLOUD_PROJECT": PROJECT,
    "RBM_CLIENT_TOKENS": f"{OTHER_CLIENT_TOKEN},{CLIENT_TOKEN}",
    "AGENT_API_KEYS": AGENT_KEY,
    "PHONE_HASH_KEY": PHONE_KEY,
    "FIRESTORE_DEADLINE_SECONDS": "3",
    # The fixtures are dated January 2026: a retention that still admits them
    # (tests of the age limit set their own).
    "RETENTION_DAYS": "3650",
}


def rbm_sample(name: str) -> dict[str, Any]:
    """A sample payload from tests/fixtures/rbm by file stem."""
    return json.loads((FIXTURES / "rbm" / f"{name}.json").read_text())


def rbm_sample_bytes(name: str) -> bytes:
    return (FIXTURES / "rbm" / f"{name}.json").read_bytes().strip()


_ENVELOPE = {
    "publish_time": "2026-01-01T00:00:00Z",
    "subscription": "projects/rbm-acme-agent/subscriptions/webhook",
}


def envelope(data: bytes) -> bytes:
    return sender.envelope(data, **_ENVELOPE)


def signed_webhook(
    payload: dict[str, Any] | bytes, token: str = CLIENT_TOKEN
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a webhook request as RBM sends it."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return sender.signed_webhook(data, token, **_ENVELOPE)


PUSH_TOKEN = "test-pubsub-push-token-0123456789ab"  # 32+ characters
ACME_ONLY_PUSH_TOKEN = "test-pubsub-acme-only-0123456789ab"
PUSH_TOKENS = f"{PUSH_TOKEN},{ACME_ONLY_PUSH_TOKEN}:acme-agent|acme-other"


def pubsub_push(data: bytes, message_id: int = 2070443601311540) -> bytes:
    """A Pub/Sub push request body, shaped as Google's documentation shows it:
    both spellings of the message id and publish time, attributes, subscription."""
    return json.dumps(
        {
            "message": {
                "attributes": {},
                "data": base64.b64encode(data).decode(),
                "messageId": str(message_id),
                "message_id": str(message_id),
                "publishTime": "2026-01-02T18:13:55.749Z",
                "publish_time": "2026-01-02T18:13:55.749Z",
            },
            "subscription": "projects/rbm-acme-agent/subscriptions/rbm-acme-agent-push",
        }
    ).encode()


def bearer(key: str = AGENT_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
