"""Webhook signatures and bearer keys, on every sample."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from rbm_analytics.core.errors import ConfigError, Forbidden, Unauthorized
from rbm_analytics.ingest import auth

from tests.support import CLIENT_TOKEN, FIXTURES, OTHER_CLIENT_TOKEN, rbm_sample_bytes

TOKENS = (OTHER_CLIENT_TOKEN, CLIENT_TOKEN)
WEBHOOK_SAMPLES = sorted(
    p.stem for p in (FIXTURES / "rbm").glob("*.json") if p.stem.startswith(("user_", "server_"))
)


def rbm_signature(data: bytes, token: str) -> str:
    """Computed here independently of auth.sign: base64(HMAC-SHA512(token, data))."""
    return base64.b64encode(hmac.new(token.encode(), data, hashlib.sha512).digest()).decode()


def test_there_are_webhook_samples() -> None:
    assert len(WEBHOOK_SAMPLES) == 10


@pytest.mark.parametrize("sample", WEBHOOK_SAMPLES)
@pytest.mark.parametrize("token", TOKENS)
def test_signature_of_every_sample_verifies(sample: str, token: str) -> None:
    data = rbm_sample_bytes(sample)
    assert auth.sign(data, token) == rbm_signature(data, token)
    auth.verify_signature(data, rbm_signature(data, token), TOKENS)


@pytest.mark.parametrize("sample", WEBHOOK_SAMPLES)
def test_any_change_to_the_data_breaks_the_signature(sample: str) -> None:
    data = rbm_sample_bytes(sample)
    signature = rbm_signature(data, CLIENT_TOKEN)
    for tampered in (data + b" ", data[:-1], data.replace(b"acme-agent", b"acme-agenT")):
        with pytest.raises(Unauthorized, match="does not match"):
            auth.verify_signature(tampered, signature, TOKENS)


def test_envelope_sample_is_signed_over_the_decoded_data() -> None:
    envelope = json.loads((FIXTURES / "rbm" / "envelope.json").read_bytes())
    data = base64.b64decode(envelope["message"]["data"])
    auth.verify_signature(data, rbm_signature(data, CLIENT_TOKEN), TOKENS)
    # Signing the base64 text instead of the decoded bytes is a common mistake.
    wrong = rbm_signature(envelope["message"]["data"].encode(), CLIENT_TOKEN)
    with pytest.raises(Unauthorized):
        auth.verify_signature(data, wrong, TOKENS)


@pytest.mark.parametrize(
    ("signature", "expected"),
    [
        (None, "X-Goog-Signature header is missing"),
        ("", "X-Goog-Signature header is missing"),
        ("%%%", "X-Goog-Signature is not valid base64"),
        ("é", "X-Goog-Signature is not valid base64"),
        (base64.b64encode(b"x" * 64).decode(), "does not match any configured client token"),
        (rbm_signature(b"{}", "another-token"), "does not match"),
    ],
)
def test_bad_signatures(signature: str | None, expected: str) -> None:
    with pytest.raises(Unauthorized, match=expected):
        auth.verify_signature(b"{}", signature, TOKENS)


def test_signature_with_surrounding_whitespace_is_accepted() -> None:
    auth.verify_signature(b"{}", f"  {rbm_signature(b'{}', CLIENT_TOKEN)}\n", TOKENS)


def test_no_configured_token_is_a_deployment_fault() -> None:
    with pytest.raises(ConfigError, match="RBM_CLIENT_TOKENS"):
        auth.verify_signature(b"{}", rbm_signature(b"{}", CLIENT_TOKEN), ())
    with pytest.raises(ConfigError, match="RBM_CLIENT_TOKENS"):
        auth.is_client_token(CLIENT_TOKEN, ())


def test_handshake_tokens() -> None:
    assert auth.is_client_token(CLIENT_TOKEN, TOKENS)
    assert auth.is_client_token(OTHER_CLIENT_TOKEN, TOKENS)
    assert not auth.is_client_token(CLIENT_TOKEN[:-1], TOKENS)
    assert not auth.is_client_token("", TOKENS)
    assert not auth.is_client_token("ünïcode", TOKENS)


KEYS = ("key-one", "key-two")


@pytest.mark.parametrize("header", ["Bearer key-one", "bearer key-two", "  Bearer   key-one  "])
def test_bearer_accepted(header: str) -> None:
    auth.verify_bearer(header, KEYS)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "Authorization header is missing"),
        ("", "Authorization header is missing"),
        ("key-one", "must be 'Bearer <key>'"),
        ("Basic a2V5LW9uZQ==", "must be 'Bearer <key>'"),
        ("Bearer ", "must be 'Bearer <key>'"),
        ("Bearer key-three", "API key is not valid"),
        ("Bearer key-on", "API key is not valid"),
        ("Bearer ключ", "API key is not valid"),
    ],
)
def test_bearer_rejected(header: str | None, expected: str) -> None:
    with pytest.raises(Unauthorized, match=expected):
        auth.verify_bearer(header, KEYS)


def test_no_configured_key_is_a_deployment_fault() -> None:
    with pytest.raises(ConfigError, match="AGENT_API_KEYS"):
        auth.verify_bearer("Bearer key-one", ())


# --- Credentials bound to agents (Pub/Sub push tokens) ----------------------
def test_credential_entries_bind_secrets_to_agents() -> None:
    creds = auth.parse_credentials(("open", "bound:acme|globex"), "PUBSUB_PUSH_TOKENS")
    assert creds == (
        auth.Credential("open", None),
        auth.Credential("bound", frozenset({"acme", "globex"})),
    )
    assert creds[0].allows("anyone") and creds[1].allows("acme")
    assert not creds[1].allows("initech")


@pytest.mark.parametrize("entry", ["bound:", ":acme", "a|b", "x:acme:globex", "x:|"])
def test_malformed_credential_entries_are_config_errors_naming_the_entry(entry: str) -> None:
    with pytest.raises(ConfigError) as err:
        auth.parse_credentials(("fine", entry), "PUBSUB_PUSH_TOKENS")
    assert "PUBSUB_PUSH_TOKENS entry 2" in err.value.message
    assert entry not in err.value.message


def test_push_token_checks() -> None:
    cred = auth.verify_push_token("bound", ("open", "bound:acme"))
    assert cred.agents == frozenset({"acme"})
    with pytest.raises(Unauthorized):
        auth.verify_push_token("nope", ("open",))
    with pytest.raises(Unauthorized):
        auth.verify_push_token(None, ("open",))
    with pytest.raises(ConfigError):
        auth.verify_push_token("open", ())
    with pytest.raises(Forbidden):
        auth.check_agent(cred, "globex", "push token")
