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

from rbm_analytics.core.errors import ConfigError, Unauthorized


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
