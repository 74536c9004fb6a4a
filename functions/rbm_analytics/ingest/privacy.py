"""Pseudonymous user keys: the only form in which a phone number is kept."""

from __future__ import annotations

import re

from rbm_analytics.core.errors import InvalidInput
from rbm_analytics.core.keyed import keyed

# E.164: a plus sign and up to 15 digits, no leading zero.
_E164 = re.compile(r"\+[1-9][0-9]{4,14}")


def user_key(phone_number: object, key: bytes, *, field: str = "senderPhoneNumber") -> str:
    """Hex HMAC-SHA256 of an E.164 number; the same for webhook events and sent records.

    Raises InvalidInput (naming ``field``, never echoing the value) when the
    number is not E.164.
    """
    if not isinstance(phone_number, str) or not _E164.fullmatch(phone_number):
        raise InvalidInput(f"{field} must be an E.164 phone number: + and 5 to 15 digits")
    return keyed(key, "sha256").digest(phone_number.encode()).hex()
