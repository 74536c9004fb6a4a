"""What a valid RBM id is: agent ids, message ids, event ids.

One rule for every place an id comes in: ingest's payloads, the export's
``agent`` parameter, and the agent lists bound to credentials in the settings.
The rule keeps ids safe as Firestore document ids (no ``/``, not ``.`` or
``..``, not ``__x__``) and as spreadsheet cells (the first character is a
letter or digit, so no id can start a formula). RBM's ids are UUIDs, short
base64-like strings and agent ids that may carry their ``@rbm.goog`` domain,
all well inside it.
"""

from __future__ import annotations

import re

# The first character is a letter or digit, so no id is ``.``, ``..`` or
# ``__x__`` either.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:=+@\-]{0,254}")
ID_RULE = "1-255 characters: letters, digits, _ . : = + @ -, starting with a letter or digit"
# The rule as a match on a string (what a hot path calls without a wrapper).
match_id = _ID.fullmatch


def is_valid_id(value: object) -> bool:
    """Whether ``value`` is a string that is a valid id."""
    return isinstance(value, str) and match_id(value) is not None
