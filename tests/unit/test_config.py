"""Settings from the environment, and the errors a misconfigured deployment gets."""

from __future__ import annotations

import pytest
from rbm_analytics import web
from rbm_analytics.core.config import DEFAULT_MAX_BODY_BYTES, ENV_VARS, Credential, Settings
from rbm_analytics.core.errors import ConfigError

K1, K2, P1 = "k1" + "1" * 30, "k2" + "2" * 30, "p1" + "3" * 30
PHONE = "phone-hash-key-" + "4" * 17  # 32 bytes


def test_defaults() -> None:
    s = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p"})
    assert s == Settings(project="p")
    assert (s.firestore_database, s.bq_dataset, s.backfill_days, s.retention_days) == (
        "(default)",
        "rbm_analytics",
        8,
        90,
    )
    assert s.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 1024 * 1024
    assert s.rbm_client_tokens == () and s.agent_api_keys == ()


def test_every_setting() -> None:
    env = {
        "GOOGLE_CLOUD_PROJECT": " p ",
        "FIRESTORE_DATABASE": "db",
        "BQ_DATASET": "ds",
        "BQ_LOCATION": "EU",
        "RBM_CLIENT_TOKENS": " a, b:agent-b ,,c:agent-a|agent-c@rbm.goog ",
        "AGENT_API_KEYS": f"{K1},{K2}:agent-b",
        "PHONE_HASH_KEY": PHONE,
        "BACKFILL_DAYS": "10",
        "RETENTION_DAYS": "30",
        "MAX_BODY_BYTES": "2048",
        "FIRESTORE_DEADLINE_SECONDS": "2.5",
        "REFRESH_OVERLAP_SECONDS": "60",
        "PUBSUB_PUSH_TOKENS": f"{P1}:agent-a",
        "FORWARD_URL": " https://bot.example/hook ",
        "FORWARD_URLS": "a1=https://a1.example/x, a=2=https://a2.example/y?k=v",
        "FORWARD_TIMEOUT_SECONDS": "3",
        "MIRROR_RETENTION_DAYS": "0",
        "REFRESH_CHUNK_DOCUMENTS": "500",
        "REFRESH_TIME_BUDGET_SECONDS": "90",
        "SHARD_COUNT": "4",
    }
    assert set(env) == set(ENV_VARS)
    s = Settings.from_env(env)
    assert s == Settings(
        project="p",
        firestore_database="db",
        bq_dataset="ds",
        bq_location="EU",
        rbm_client_tokens=(
            Credential("a"),
            Credential("b", frozenset({"agent-b"})),
            Credential("c", frozenset({"agent-a", "agent-c@rbm.goog"})),
        ),
        agent_api_keys=(Credential(K1), Credential(K2, frozenset({"agent-b"}))),
        phone_hash_key=PHONE.encode(),
        backfill_days=10,
        retention_days=30,
        max_body_bytes=2048,
        firestore_deadline_s=2.5,
        refresh_overlap_s=60.0,
        pubsub_push_tokens=(Credential(P1, frozenset({"agent-a"})),),
        forward_url="https://bot.example/hook",
        forward_urls=(("a1", "https://a1.example/x"), ("a=2", "https://a2.example/y?k=v")),
        forward_timeout_s=3.0,
        mirror_retention_days=0,
        refresh_chunk_documents=500,
        refresh_time_budget_s=90.0,
        shard_count=4,
    )
    assert s.require_phone_hash_key() == PHONE.encode()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "GOOGLE_CLOUD_PROJECT is not set"),
        ({"GOOGLE_CLOUD_PROJECT": "  "}, "GOOGLE_CLOUD_PROJECT is not set"),
        ({"MAX_BODY_BYTES": "1MiB"}, "MAX_BODY_BYTES must be an integer, got '1MiB'"),
        ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES must be at least 1, got 0"),
        ({"BACKFILL_DAYS": "-8"}, "BACKFILL_DAYS must be at least 1, got -8"),
        ({"FORWARD_URLS": "agent-a"}, "FORWARD_URLS entry 1 must be agentId=https://"),
        ({"FORWARD_URLS": "a=https://x,b=ftp://y"}, "FORWARD_URLS entry 2 must be"),
        ({"FORWARD_URLS": "-a=https://x"}, "FORWARD_URLS entry 1: the agent id is not valid"),
        ({"FORWARD_URL": "bot.example/hook"}, "FORWARD_URL must be an http:// or https:// URL"),
        ({"MIRROR_RETENTION_DAYS": "-1"}, "MIRROR_RETENTION_DAYS must be at least 0, got -1"),
        ({"RETENTION_DAYS": "9.5"}, "RETENTION_DAYS must be an integer"),
        ({"FIRESTORE_DEADLINE_SECONDS": "soon"}, "FIRESTORE_DEADLINE_SECONDS must be a number"),
        ({"FIRESTORE_DEADLINE_SECONDS": "0"}, "FIRESTORE_DEADLINE_SECONDS must be positive"),
        ({"REFRESH_OVERLAP_SECONDS": "-1"}, "REFRESH_OVERLAP_SECONDS must be positive"),
        ({"AGENT_API_KEYS": f"{K1},short"}, "AGENT_API_KEYS entry 2 is shorter than 32 characters"),
        ({"PUBSUB_PUSH_TOKENS": "short:agent-a"}, "PUBSUB_PUSH_TOKENS entry 1 is shorter than 32"),
        ({"PHONE_HASH_KEY": "x" * 31}, "PHONE_HASH_KEY is shorter than 32 bytes"),
        ({"RBM_CLIENT_TOKENS": ":agent-a"}, "RBM_CLIENT_TOKENS entry 1 has no secret"),
        ({"RBM_CLIENT_TOKENS": "a|b"}, "RBM_CLIENT_TOKENS entry 1: a secret cannot contain '|'"),
        ({"RBM_CLIENT_TOKENS": "ok,tok:"}, "RBM_CLIENT_TOKENS entry 2: after ':' comes agentA|"),
        ({"RBM_CLIENT_TOKENS": "tok:a||b"}, "RBM_CLIENT_TOKENS entry 1: after ':' comes"),
        ({"AGENT_API_KEYS": f"{K1}:=HYPERLINK()"}, "AGENT_API_KEYS entry 1: after ':' comes"),
    ],
)
def test_errors_name_the_setting(env: dict[str, str], message: str) -> None:
    base = {"GOOGLE_CLOUD_PROJECT": "p"} if "PROJECT" not in message else {}
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**base, **env})
    assert message in info.value.message
    assert web.status_of(info.value) == 503


def test_phone_hash_key_length_is_counted_in_bytes() -> None:
    # 11 three-byte characters are 33 bytes.
    env = {"GOOGLE_CLOUD_PROJECT": "p", "PHONE_HASH_KEY": "€" * 11}
    assert len(Settings.from_env(env).phone_hash_key) == 33


@pytest.mark.parametrize(
    "env",
    [
        {"AGENT_API_KEYS": "tiny-secret-value"},
        {"PUBSUB_PUSH_TOKENS": "tiny-secret-value"},
        {"PHONE_HASH_KEY": "tiny-secret-value"},
        {"RBM_CLIENT_TOKENS": "tiny-secret-value|x"},
        {"AGENT_API_KEYS": "tiny-secret-value:bad agent"},
    ],
)
def test_errors_never_quote_a_secret(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p", **env})
    assert "tiny" not in info.value.message


def test_secrets_stay_out_of_repr() -> None:
    s = Settings.from_env(
        {"GOOGLE_CLOUD_PROJECT": "p", "AGENT_API_KEYS": f"{K1}:agent-a", "PHONE_HASH_KEY": PHONE}
    )
    assert K1 not in repr(s) and PHONE not in repr(s)
    assert "agent-a" in repr(s)


def test_missing_phone_hash_key_is_a_503() -> None:
    with pytest.raises(ConfigError, match="PHONE_HASH_KEY is not set") as info:
        Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p"}).require_phone_hash_key()
    assert web.status_of(info.value) == 503
