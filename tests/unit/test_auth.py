"""Webhook signatures, bearer keys and push tokens, and the agents each may write for."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from rbm_analytics import web
from rbm_analytics.core.config import Credential, Settings
from rbm_analytics.core.errors import ConfigError, NotPermitted, Unauthenticated
from rbm_analytics.ingest import auth

from tests.support import CLIENT_TOKEN, FIXTURES, OTHER_CLIENT_TOKEN, rbm_sample_bytes

TOKENS = (Credential(OTHER_CLIENT_TOKEN), Credential(CLIENT_TOKEN))
WEBHOOK_SAMPLES = sorted(
    p.stem for p in (FIXTURES / "rbm").glob("*.json") if p.stem.startswith(("user_", "server_"))
)


def rbm_signature(data: bytes, token: str) -> str:
    """Computed here independently of auth.sign: base64(HMAC-SHA512(token, data))."""
    return base64.b64encode(hmac.new(token.encode(), data, hashlib.sha512).digest()).decode()


def test_there_are_webhook_samples() -> None:
    assert len(WEBHOOK_SAMPLES) == 10


@pytest.mark.parametrize("sample", WEBHOOK_SAMPLES)
@pytest.mark.parametrize("token", (OTHER_CLIENT_TOKEN, CLIENT_TOKEN))
def test_signature_of_every_sample_verifies(sample: str, token: str) -> None:
    data = rbm_sample_bytes(sample)
    assert auth.sign(data, token) == rbm_signature(data, token)
    auth.verify_signature(data, rbm_signature(data, token), TOKENS)


@pytest.mark.parametrize("sample", WEBHOOK_SAMPLES)
def test_any_change_to_the_data_breaks_the_signature(sample: str) -> None:
    data = rbm_sample_bytes(sample)
    signature = rbm_signature(data, CLIENT_TOKEN)
    for tampered in (data + b" ", data[:-1], data.replace(b"acme-agent", b"acme-agenT")):
        with pytest.raises(Unauthenticated, match="does not match"):
            auth.verify_signature(tampered, signature, TOKENS)


def test_envelope_sample_is_signed_over_the_decoded_data() -> None:
    envelope = json.loads((FIXTURES / "rbm" / "envelope.json").read_bytes())
    data = base64.b64decode(envelope["message"]["data"])
    auth.verify_signature(data, rbm_signature(data, CLIENT_TOKEN), TOKENS)
    # Signing the base64 text instead of the decoded bytes is a common mistake.
    wrong = rbm_signature(envelope["message"]["data"].encode(), CLIENT_TOKEN)
    with pytest.raises(Unauthenticated):
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
    with pytest.raises(Unauthenticated, match=expected):
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


KEYS = (Credential("key-one"), Credential("key-two"))


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
    with pytest.raises(Unauthenticated, match=expected):
        auth.verify_bearer(header, KEYS)


def test_no_configured_key_is_a_deployment_fault() -> None:
    with pytest.raises(ConfigError, match="AGENT_API_KEYS"):
        auth.verify_bearer("Bearer key-one", ())


# --- credentials bound to agents ---------------------------------------------


def creds(setting: str, value: str) -> tuple[Credential, ...]:
    """Credentials parsed exactly as a deployment's settings parse them."""
    env = {"GOOGLE_CLOUD_PROJECT": "p", setting: value}
    s = Settings.from_env(env)
    return {
        "RBM_CLIENT_TOKENS": s.rbm_client_tokens,
        "AGENT_API_KEYS": s.agent_api_keys,
        "PUBSUB_PUSH_TOKENS": s.pubsub_push_tokens,
    }[setting]


KEY_A, KEY_B, KEY_ANY = "a" * 32, "b" * 32, "c" * 32


def test_an_unbound_token_allows_any_agent() -> None:
    tokens = creds("RBM_CLIENT_TOKENS", "tok")
    grant = auth.verify_signature(b"{}", rbm_signature(b"{}", "tok"), tokens)
    assert grant.agents is None
    grant.require("any-agent")


def test_a_bound_token_allows_only_its_agents() -> None:
    tokens = creds("RBM_CLIENT_TOKENS", "tokA:agent-a|agent-c,tokB:agent-b")
    grant = auth.verify_signature(b"{}", rbm_signature(b"{}", "tokA"), tokens)
    assert grant.agents == {"agent-a", "agent-c"}
    grant.require("agent-a")
    grant.require("agent-c")
    with pytest.raises(NotPermitted) as info:
        grant.require("agent-b")
    assert web.status_of(info.value) == 403
    assert info.value.message == "agentId names an agent this client token is not bound to"


def test_a_signature_is_checked_against_every_token() -> None:
    """Two entries sharing a secret: the request may write for the agents of both."""
    tokens = creds("RBM_CLIENT_TOKENS", "tokB:agent-b,shared:agent-a,shared:agent-c")
    grant = auth.verify_signature(b"{}", rbm_signature(b"{}", "shared"), tokens)
    assert grant.agents == {"agent-a", "agent-c"}
    # One of the matching entries is unbound: any agent.
    tokens = creds("RBM_CLIENT_TOKENS", "shared:agent-a,shared")
    assert auth.verify_signature(b"{}", rbm_signature(b"{}", "shared"), tokens).agents is None


def test_handshake_accepts_bound_tokens() -> None:
    tokens = creds("RBM_CLIENT_TOKENS", "tokA:agent-a,tokB:agent-b")
    assert auth.is_client_token("tokB", tokens)
    assert not auth.is_client_token("tokB:agent-b", tokens)


def test_bound_bearer_keys() -> None:
    keys = creds("AGENT_API_KEYS", f"{KEY_A}:agent-a,{KEY_B}:agent-b,{KEY_ANY}")
    assert auth.verify_bearer(f"Bearer {KEY_A}", keys).agents == {"agent-a"}
    assert auth.verify_bearer(f"Bearer {KEY_ANY}", keys).agents is None
    with pytest.raises(
        NotPermitted, match=r"^agentMessages\[3\].agentId names an agent this API key"
    ):
        auth.verify_bearer(f"Bearer {KEY_B}", keys).require("agent-a", "agentMessages[3].agentId")
    # The agent list is not part of the secret.
    with pytest.raises(Unauthenticated, match="API key is not valid"):
        auth.verify_bearer(f"Bearer {KEY_A}:agent-a", keys)


def test_push_tokens() -> None:
    tokens = creds("PUBSUB_PUSH_TOKENS", f"{KEY_A}:agent-a")
    assert auth.verify_push_token(KEY_A, tokens).agents == {"agent-a"}
    for wrong in (None, "", KEY_B, KEY_A[:-1]):
        with pytest.raises(Unauthenticated) as info:
            auth.verify_push_token(wrong, tokens)
        assert web.status_of(info.value) == 401
    with pytest.raises(ConfigError, match="PUBSUB_PUSH_TOKENS is not set"):
        auth.verify_push_token(KEY_A, ())


def test_the_local_stack_binds_each_demo_agent_to_one_tenant() -> None:
    from rbm_analytics_dev.local.simulate import AGENT_NAMES
    from rbm_analytics_dev.local.stack import StackConfig

    settings = Settings.from_env(StackConfig().function_env())  # the functions' own checks
    for creds in (settings.rbm_client_tokens, settings.agent_api_keys):
        assert all(c.agents for c in creds)  # every entry is bound
        for agent in AGENT_NAMES:
            assert sum(c.allows(agent) for c in creds) == 1
    first, second = settings.rbm_client_tokens
    assert not first.allows(AGENT_NAMES[1]) and not second.allows(AGENT_NAMES[0])
