"""Structured logs: one JSON object per line, which Cloud Logging parses.

Callers pass counts, ids and outcomes only. Phone numbers, message text, file
URIs and coordinates never reach this module.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

# Built once: json.dumps with options builds a new encoder on every call, a
# noticeable share of a webhook request's CPU.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
# The last second formatted, and its text: one line per request, many per second.
_clock: tuple[int, str] = (0, "")


def _now() -> str:
    global _clock
    second = int(time.time())
    if _clock[0] != second:
        _clock = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _clock[1]


def emit(severity: str, message: str, **fields: Any) -> None:
    """Write one log entry; ``severity`` is a Cloud Logging severity name."""
    entry: dict[str, Any] = {"severity": severity, "message": message}
    entry.update(fields)
    if "time" not in entry:
        entry["time"] = _now()
    sys.stdout.write(_ENCODER.encode(entry) + "\n")
    sys.stdout.flush()


def info(message: str, **fields: Any) -> None:
    emit("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    emit("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    emit("ERROR", message, **fields)
