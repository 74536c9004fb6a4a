"""Request authentication, and which agents a request may write for.

Three kinds of credential, all configured as ``SECRET`` (any agent) or
``SECRET:agentA|agentB`` (only those agents), see ``core.config.Credential``:

* RBM's webhook signature, ``X-Goog-Signature`` = base64(HMAC-SHA512(client
  token, data)), against ``RBM_CLIENT_TOKENS``;
* the sent log's ``Authorization: Bearer <key>``, against ``AGENT_API_KEYS``;
* a Pub/Sub push subscription's ``?token=``, against ``PUBSUB_PUSH_TOKENS``.

A credential that verifies gives a ``Grant``: the agents of every entry that
matched (two entries may share a secret; a signature is checked against every
token). The route then asks the grant about each record's ``agentId``:
401 when nothing verifies, 403 when the grant does not cover the agent.

Every configured secret is compared, in constant time, whatever the outcome of
the others, so timing reveals neither which entry matched nor how much of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from typing import NamedTuple

from rbm_analytics.core.config import Credential
from rbm_analytics.core.errors import ConfigError, NotPermitted, Unauthenticated
from rbm_analytics.core.keyed import keyed


class Grant(NamedTuple):
    """The agents a verified request may write for (``agents`` None: any).

    A named tuple: immutable, and cheap to build on every request."""

    agents: frozenset[str] | None
    credential: str  # what matched, for error messages: "client token", "API key", ...

    def allows(self, agent_id: str) -> bool:
        return self.agents is None or agent_id in self.agents

    def require(self, agent_id: str, field: str = "agentId") -> None:
        """403 naming ``field`` (never its value) when ``agent_id`` is not covered."""
        if not self.allows(agent_id):
            raise NotPermitted(f"{field} names an agent this {self.credential} is not bound to")


def _grant(
    credentials: tuple[Credential, ...], matches: Callable[[Credential], bool], what: str
) -> Grant | None:
    """The grant of every entry ``matches`` accepts; all entries are always tried."""
    matched = [c for c in credentials if matches(c)]
    return _grant_of(matched, what) if matched else None


def _grant_of(matched: list[Credential], what: str) -> Grant:
    if len(matched) == 1:  # nearly always: the one entry's own agents
        return Grant(matched[0].agents, what)
    if any(c.agents is None for c in matched):
        return Grant(None, what)
    return Grant(frozenset().union(*(c.agents or () for c in matched)), what)


def verify_signature(data: bytes, signature: str | None, tokens: tuple[Credential, ...]) -> Grant:
    """Check ``X-Goog-Signature`` = base64(HMAC-SHA512(token, data)) against every token."""
    if not tokens:
        # A deployment fault, not the sender's: 503 so RBM keeps retrying.
        raise ConfigError("RBM_CLIENT_TOKENS is not set: webhook signatures cannot be verified")
    if not signature:
        raise Unauthenticated("X-Goog-Signature header is missing")
    try:
        # Strict: only the base64 alphabet, with correct padding and nothing after it.
        provided = binascii.a2b_base64(signature.strip(), strict_mode=True)
    except (binascii.Error, ValueError):
        raise Unauthenticated("X-Goog-Signature is not valid base64") from None

    # Every token is tried, each against its own keyed HMAC.
    matched = []
    for token in tokens:
        if hmac.compare_digest(provided, keyed(token.secret, "sha512").digest(data)):
            matched.append(token)
    if not matched:
        raise Unauthenticated("X-Goog-Signature does not match any configured client token")
    return _grant_of(matched, "client token")


def sign(data: bytes, token: str) -> str:
    """The signature RBM sends for ``data`` (used by the simulator and tests)."""
    return base64.b64encode(hmac.new(token.encode(), data, hashlib.sha512).digest()).decode()


def is_client_token(token: str, tokens: tuple[Credential, ...]) -> bool:
    """Whether a handshake's ``clientToken`` is a configured token (503 when none is)."""
    if not tokens:
        raise ConfigError("RBM_CLIENT_TOKENS is not set: the webhook cannot be verified")
    return _grant(tokens, _equals(token), "client token") is not None


def verify_secret(
    candidate: str | None, credentials: tuple[Credential, ...], *, setting: str, what: str
) -> Grant:
    """The grant of a secret presented as is (a bearer key, a push ``?token=``).

    503 (ConfigError naming ``setting``) when none is configured, 401 when
    ``candidate`` is missing or matches no entry.
    """
    if not credentials:
        raise ConfigError(f"{setting} is not set: no {what} can be accepted")
    if not candidate:
        raise Unauthenticated(f"the {what} is missing")
    grant = _grant(credentials, _equals(candidate), what)
    if grant is None:
        raise Unauthenticated(f"the {what} is not valid")
    return grant


def verify_bearer(authorization: str | None, keys: tuple[Credential, ...]) -> Grant:
    """Check ``Authorization: Bearer <key>`` against ``AGENT_API_KEYS``."""
    if not keys:
        raise ConfigError("AGENT_API_KEYS is not set: no API key can be accepted")
    if not authorization:
        raise Unauthenticated("Authorization header is missing; send 'Bearer <key>'")
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated("Authorization must be 'Bearer <key>'")
    return verify_secret(key.strip(), keys, setting="AGENT_API_KEYS", what="API key")


def verify_push_token(token: str | None, tokens: tuple[Credential, ...]) -> Grant:
    """Check a Pub/Sub push request's ``?token=`` against ``PUBSUB_PUSH_TOKENS``."""
    return verify_secret(token, tokens, setting="PUBSUB_PUSH_TOKENS", what="push token")


def _equals(candidate: str) -> Callable[[Credential], bool]:
    encoded = candidate.encode()
    return lambda c: hmac.compare_digest(encoded, c.secret.encode())
