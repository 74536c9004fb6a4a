"""Settings: the one place the environment is read."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from rbm_analytics.core.errors import ConfigError
from rbm_analytics.core.ids import ID_RULE, is_valid_id

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Shortest API key, push token and phone hashing key accepted. A short
# PHONE_HASH_KEY lets anyone holding a user_key recover the phone number by
# hashing every possible number; a short API key can be guessed online.
MIN_SECRET_CHARS = 32
MIN_PHONE_HASH_KEY_BYTES = 32

# Every environment variable the functions read. infra/ sets exactly these
# (tests compare the two lists), so a renamed setting cannot silently fall
# back to its default in the cloud.
ENV_VARS = (
    "GOOGLE_CLOUD_PROJECT",
    "FIRESTORE_DATABASE",
    "BQ_DATASET",
    "BQ_LOCATION",
    "RBM_CLIENT_TOKENS",
    "AGENT_API_KEYS",
    "PHONE_HASH_KEY",
    "BACKFILL_DAYS",
    "RETENTION_DAYS",
    "MAX_BODY_BYTES",
    "FIRESTORE_DEADLINE_SECONDS",
    "REFRESH_OVERLAP_SECONDS",
    "PUBSUB_PUSH_TOKENS",
    "FORWARD_URL",
    "FORWARD_URLS",
    "FORWARD_TIMEOUT_SECONDS",
    "MIRROR_RETENTION_DAYS",
    "REFRESH_CHUNK_DOCUMENTS",
    "REFRESH_TIME_BUDGET_SECONDS",
    "SHARD_COUNT",
)
SECRET_ENV_VARS = ("RBM_CLIENT_TOKENS", "AGENT_API_KEYS", "PHONE_HASH_KEY", "PUBSUB_PUSH_TOKENS")


def _csv(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Credential:
    """One entry of RBM_CLIENT_TOKENS, AGENT_API_KEYS or PUBSUB_PUSH_TOKENS.

    ``SECRET`` is accepted for any agent; ``SECRET:agentA|agentB`` only for
    requests whose every ``agentId`` is one of those (``agents`` is None for
    "any agent").
    """

    secret: str = field(repr=False)
    agents: frozenset[str] | None = None

    def allows(self, agent_id: str) -> bool:
        return self.agents is None or agent_id in self.agents


def _credentials(env: Mapping[str, str], name: str, min_chars: int = 1) -> tuple[Credential, ...]:
    return parse_credentials(env.get(name), name, min_chars)


def parse_credentials(raw: str | None, name: str, min_chars: int = 1) -> tuple[Credential, ...]:
    """Parse ``SECRET`` / ``SECRET:agentA|agentB`` entries, comma-separated, as
    setting ``name`` holds them (a ConfigError names the setting and the entry's
    position, never a secret)."""
    out = []
    for i, entry in enumerate(_csv(raw), start=1):
        secret, bound, agent_list = entry.partition(":")
        secret = secret.strip()
        if not secret:
            raise ConfigError(f"{name} entry {i} has no secret before ':'")
        if "|" in secret:
            raise ConfigError(
                f"{name} entry {i}: a secret cannot contain '|' (the form is SECRET or "
                "SECRET:agentA|agentB)"
            )
        if len(secret) < min_chars:
            raise ConfigError(
                f"{name} entry {i} is shorter than {min_chars} characters; "
                "generate one with: openssl rand -hex 32"
            )
        agents = None
        if bound:
            names = [a.strip() for a in agent_list.split("|")]
            if not all(is_valid_id(a) for a in names):
                raise ConfigError(
                    f"{name} entry {i}: after ':' comes agentA|agentB, each a valid agent id "
                    f"({ID_RULE})"
                )
            agents = frozenset(names)
        out.append(Credential(secret, agents))
    return tuple(out)


def _phone_hash_key(env: Mapping[str, str]) -> bytes:
    key = env.get("PHONE_HASH_KEY", "").encode()
    # Empty is "not set": only ingest needs the key, and it answers 503 then.
    if key and len(key) < MIN_PHONE_HASH_KEY_BYTES:
        raise ConfigError(
            f"PHONE_HASH_KEY is shorter than {MIN_PHONE_HASH_KEY_BYTES} bytes; "
            "generate one with: openssl rand -hex 32"
        )
    return key


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


# An agent id may hold "=" itself: the URL is what follows the last
# "=http://" or "=https://".
_FORWARD_ENTRY = re.compile(r"(?P<agent>.+)=(?P<url>https?://\S+)")


def _forward_url(raw: str | None) -> str:
    url = (raw or "").strip()
    if url and not re.fullmatch(r"https?://\S+", url):
        raise ConfigError("FORWARD_URL must be an http:// or https:// URL")
    return url


def _forward_urls(raw: str | None) -> tuple[tuple[str, str], ...]:
    """``agentId=url,agentId=url``: each agent's own relay target."""
    pairs = []
    for n, entry in enumerate(_csv(raw), start=1):
        m = _FORWARD_ENTRY.fullmatch(entry)
        if m is None:
            raise ConfigError(
                f"FORWARD_URLS entry {n} must be agentId=https://…, separated by commas"
            )
        if not is_valid_id(m["agent"]):
            raise ConfigError(f"FORWARD_URLS entry {n}: the agent id is not valid ({ID_RULE})")
        pairs.append((m["agent"], m["url"]))
    return tuple(pairs)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Deployment settings, built once per instance from the environment."""

    project: str
    firestore_database: str = "(default)"
    bq_dataset: str = "rbm_analytics"
    bq_location: str = "US"
    rbm_client_tokens: tuple[Credential, ...] = ()
    agent_api_keys: tuple[Credential, ...] = ()
    phone_hash_key: bytes = field(default=b"", repr=False)
    backfill_days: int = 8
    retention_days: int = 90
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Upper bound on one Firestore write, retries included: RBM gets a 503
    # well inside its own request timeout instead of a hang.
    firestore_deadline_s: float = 10.0
    # How far before the previous run's start the next refresh re-reads, to
    # cover clock skew between this instance and Firestore's commit times.
    refresh_overlap_s: float = 300.0
    pubsub_push_tokens: tuple[Credential, ...] = ()
    # Relay: every verified webhook request is also forwarded to the agent's
    # own bot (FORWARD_URLS per agent, else FORWARD_URL; empty = no relay).
    forward_url: str = ""
    forward_urls: tuple[tuple[str, str], ...] = ()
    forward_timeout_s: float = 10.0
    # How long mirror partitions live in BigQuery (0 = forever); a refresh
    # that would read older partitions is refused.
    mirror_retention_days: int = 400
    # Documents the refresh reads, loads and commits per chunk (bounds memory).
    refresh_chunk_documents: int = 20_000
    # Seconds a refresh may spend catching up before it saves its progress
    # and stops (inside the function's timeout, with room for the daily step).
    refresh_time_budget_s: float = 1200.0
    # Shards of the change feed: spreads the indexed update time over this
    # many index ranges (no write hotspot) and lets the refresh fan out.
    shard_count: int = 16

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; a ConfigError (503) names the one that is wrong."""
        env = os.environ if env is None else env
        project = env.get("GOOGLE_CLOUD_PROJECT", "").strip()
        if not project:
            raise ConfigError("GOOGLE_CLOUD_PROJECT is not set")
        return cls(
            project=project,
            firestore_database=env.get("FIRESTORE_DATABASE", "").strip() or "(default)",
            bq_dataset=env.get("BQ_DATASET", "").strip() or "rbm_analytics",
            bq_location=env.get("BQ_LOCATION", "").strip() or "US",
            # Client tokens are chosen in the RBM console, not here: no minimum.
            rbm_client_tokens=_credentials(env, "RBM_CLIENT_TOKENS"),
            agent_api_keys=_credentials(env, "AGENT_API_KEYS", MIN_SECRET_CHARS),
            phone_hash_key=_phone_hash_key(env),
            backfill_days=_int(env, "BACKFILL_DAYS", 8),
            retention_days=_int(env, "RETENTION_DAYS", 90),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            firestore_deadline_s=_float(env, "FIRESTORE_DEADLINE_SECONDS", 10.0),
            refresh_overlap_s=_float(env, "REFRESH_OVERLAP_SECONDS", 300.0),
            pubsub_push_tokens=_credentials(env, "PUBSUB_PUSH_TOKENS", MIN_SECRET_CHARS),
            forward_url=_forward_url(env.get("FORWARD_URL")),
            forward_urls=_forward_urls(env.get("FORWARD_URLS")),
            forward_timeout_s=_float(env, "FORWARD_TIMEOUT_SECONDS", 10.0),
            mirror_retention_days=_int(env, "MIRROR_RETENTION_DAYS", 400, minimum=0),
            refresh_chunk_documents=_int(env, "REFRESH_CHUNK_DOCUMENTS", 20_000),
            refresh_time_budget_s=_float(env, "REFRESH_TIME_BUDGET_SECONDS", 1200.0),
            shard_count=_int(env, "SHARD_COUNT", 16),
        )

    def require_phone_hash_key(self) -> bytes:
        """The hashing key; without it nothing may be stored (503, so RBM retries)."""
        if not self.phone_hash_key:
            raise ConfigError("PHONE_HASH_KEY is not set")
        return self.phone_hash_key


@cache
def get_settings() -> Settings:
    """The instance's settings, read once (tests call ``get_settings.cache_clear()``)."""
    return Settings.from_env()
