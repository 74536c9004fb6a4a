"""The keyed HMAC gives exactly the standard library's HMAC bytes."""

from __future__ import annotations

import hmac
import random

import pytest
from rbm_analytics.core.keyed import Keyed, keyed

SEED = 20261202


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_agrees_with_hmac_for_random_keys_and_messages(algorithm: str) -> None:
    print(f"seed {SEED}")
    rng = random.Random(SEED)
    for _ in range(2000):
        # Keys shorter than, as long as and longer than a block (64 / 128 bytes).
        key = rng.randbytes(rng.choice([0, 1, 16, 32, 63, 64, 65, 127, 128, 129, 300]))
        message = rng.randbytes(rng.randrange(0, 1000))
        mac = Keyed(key, algorithm)  # type: ignore[arg-type]
        assert mac.digest(message) == hmac.digest(key, message, algorithm)
        # The same state serves the next message unchanged.
        assert mac.digest(message[:7]) == hmac.digest(key, message[:7], algorithm)


def test_a_string_key_is_its_utf8_and_made_once() -> None:
    first = keyed("tökén", "sha512")
    assert first is keyed("tökén", "sha512")
    assert first.digest(b"data") == hmac.digest("tökén".encode(), b"data", "sha512")
    assert keyed("tökén", "sha256").digest(b"data") == hmac.digest(
        "tökén".encode(), b"data", "sha256"
    )
