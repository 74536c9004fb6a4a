"""Settings from the environment, and the errors a misconfigured deployment gets."""

from __future__ import annotations

import pytest
from rbm_analytics.core.config import DEFAULT_MAX_BODY_BYTES, ENV_VARS, Settings
from rbm_analytics.core.errors import ConfigError


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
        "RBM_CLIENT_TOKENS": " a, b ,,c ",
        "AGENT_API_KEYS": "k1,k2",
        "PHONE_HASH_KEY": "secret",
        "BACKFILL_DAYS": "10",
        "RETENTION_DAYS": "30",
        "MAX_BODY_BYTES": "2048",
        "FIRESTORE_DEADLINE_SECONDS": "2.5",
        "REFRESH_OVERLAP_SECONDS": "60",
        "PUBSUB_PUSH_TOKENS": "p1",
        "FORWARD_URL": " https://bot.example/hook ",
        "FORWARD_URLS": "a1=https://a1.example/x, a2=https://a2.example/y",
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
        rbm_client_tokens=("a", "b", "c"),
        agent_api_keys=("k1", "k2"),
        phone_hash_key=b"secret",
        backfill_days=10,
        retention_days=30,
        max_body_bytes=2048,
        firestore_deadline_s=2.5,
        refresh_overlap_s=60.0,
        pubsub_push_tokens=("p1",),
        forward_url="https://bot.example/hook",
        forward_urls=(("a1", "https://a1.example/x"), ("a2", "https://a2.example/y")),
        forward_timeout_s=3.0,
        mirror_retention_days=0,
        refresh_chunk_documents=500,
        refresh_time_budget_s=90.0,
        shard_count=4,
    )
    assert s.require_phone_hash_key() == b"secret"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "GOOGLE_CLOUD_PROJECT is not set"),
        ({"GOOGLE_CLOUD_PROJECT": "  "}, "GOOGLE_CLOUD_PROJECT is not set"),
        ({"MAX_BODY_BYTES": "1MiB"}, "MAX_BODY_BYTES must be an integer, got '1MiB'"),
        ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES must be at least 1, got 0"),
        ({"BACKFILL_DAYS": "-8"}, "BACKFILL_DAYS must be at least 1, got -8"),
        ({"FORWARD_URLS": "agent-a"}, "FORWARD_URLS entries must be agentId=url"),
        ({"MIRROR_RETENTION_DAYS": "-1"}, "MIRROR_RETENTION_DAYS must be at least 0, got -1"),
        ({"RETENTION_DAYS": "9.5"}, "RETENTION_DAYS must be an integer"),
        ({"FIRESTORE_DEADLINE_SECONDS": "soon"}, "FIRESTORE_DEADLINE_SECONDS must be a number"),
        ({"FIRESTORE_DEADLINE_SECONDS": "0"}, "FIRESTORE_DEADLINE_SECONDS must be positive"),
        ({"REFRESH_OVERLAP_SECONDS": "-1"}, "REFRESH_OVERLAP_SECONDS must be positive"),
    ],
)
def test_errors_name_the_setting(env: dict[str, str], message: str) -> None:
    base = {"GOOGLE_CLOUD_PROJECT": "p"} if "PROJECT" not in message else {}
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**base, **env})
    assert message in info.value.message
    assert info.value.status == 503


def test_missing_phone_hash_key_is_a_503() -> None:
    with pytest.raises(ConfigError, match="PHONE_HASH_KEY is not set") as info:
        Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p"}).require_phone_hash_key()
    assert info.value.status == 503
