"""Request authentication: RBM's webhook signature and the sent log's bearer keys.

Every configured secret is compared, in constant time, whatever the outcome of
the others, so timing reveals neither which token matched nor how much of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from rbm_analytics.core.errors import ConfigError, Forbidden, Unauthorized


def _any_equal(candidate: bytes, secrets: Iterable[bytes]) -> bool:
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(candidate, secret)
    return matched


def verify_signature(data: bytes, signature: str | None, tokens: tuple[str, ...]) -> None:
    """Check ``X-Goog-Signature`` = base64(HMAC-SHA512(token, data)) for some token."""
    if not tokens:
        # A deployment fault, not the sender's: 503 so RBM keeps retrying.
        raise ConfigError("RBM_CLIENT_TOKENS is not set: webhook signatures cannot be verified")
    if not signature:
        raise Unauthorized("X-Goog-Signature header is missing")
    try:
        provided = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Unauthorized("X-Goog-Signature is not valid base64") from None
    expected = (hmac.new(t.encode(), data, hashlib.sha512).digest() for t in tokens)
    if not _any_equal(provided, expected):
        raise Unauthorized("X-Goog-Signature does not match any configured client token")


def sign(data: bytes, token: str) -> str:
    """The signature RBM sends for ``data`` (used by the simulator and tests)."""
    return base64.b64encode(hmac.new(token.encode(), data, hashlib.sha512).digest()).decode()


def is_client_token(token: str, tokens: tuple[str, ...]) -> bool:
    """Whether a handshake's ``clientToken`` is configured (503 when none is)."""
    if not tokens:
        raise ConfigError("RBM_CLIENT_TOKENS is not set: the webhook cannot be verified")
    return _any_equal(token.encode(), (t.encode() for t in tokens))


def verify_bearer(authorization: str | None, keys: tuple[str, ...]) -> None:
    """Check ``Authorization: Bearer <key>`` against the configured API keys."""
    if not keys:
        raise ConfigError("AGENT_API_KEYS is not set: no API key can be accepted")
    if not authorization:
        raise Unauthorized("Authorization header is missing; send 'Bearer <key>'")
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("Authorization must be 'Bearer <key>'")
    if not _any_equal(key.strip().encode(), (k.encode() for k in keys)):
        raise Unauthorized("API key is not valid")


# --- Credentials bound to agents ------------------------------------------
# An entry is ``SECRET`` (any agent) or ``SECRET:agentA|agentB`` (only those).


@dataclass(frozen=True)
class Credential:
    """One configured secret and the agents it may speak for (None: any)."""

    secret: str
    agents: frozenset[str] | None = None

    def allows(self, agent_id: str) -> bool:
        return self.agents is None or agent_id in self.agents


def parse_credentials(entries: tuple[str, ...], setting: str) -> tuple[Credential, ...]:
    """The entries of ``setting``; a malformed one is a configuration error (503)."""
    out = []
    for n, entry in enumerate(entries, 1):
        secret, sep, agents = entry.partition(":")
        names = frozenset(a.strip() for a in agents.split("|") if a.strip()) if sep else None
        if not secret.strip() or "|" in secret or (sep and (not names or ":" in agents)):
            # Which entry, never its value: the value is a secret.
            raise ConfigError(f"{setting} entry {n} must be SECRET or SECRET:agentA|agentB")
        out.append(Credential(secret.strip(), names))
    return tuple(out)


def find_credential(candidate: str, credentials: tuple[Credential, ...]) -> Credential | None:
    """The credential whose secret is ``candidate``; every one is compared."""
    found = None
    for cred in credentials:
        if hmac.compare_digest(candidate.encode(), cred.secret.encode()):
            found = cred
    return found


def verify_push_token(token: str | None, entries: tuple[str, ...]) -> Credential:
    """The ``?token=`` of a Pub/Sub push against ``PUBSUB_PUSH_TOKENS``."""
    credentials = parse_credentials(entries, "PUBSUB_PUSH_TOKENS")
    if not credentials:
        raise ConfigError("PUBSUB_PUSH_TOKENS is not set: no Pub/Sub push can be accepted")
    if not token:
        raise Unauthorized("the token query parameter is missing; push to /pubsub?token=SECRET")
    cred = find_credential(token, credentials)
    if cred is None:
        raise Unauthorized("the token query parameter is not a configured Pub/Sub push token")
    return cred


def check_agent(credential: Credential, agent_id: str, what: str) -> None:
    """403 when ``credential`` is bound to other agents than ``agent_id``."""
    if not credential.allows(agent_id):
        raise Forbidden(f"this {what} is not allowed for the agentId in the request")
