"""Structured logs: one JSON object per line, which Cloud Logging parses.

Callers pass counts, ids and outcomes only. Phone numbers, message text, file
URIs and coordinates never reach this module.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def emit(severity: str, message: str, **fields: Any) -> None:
    """Write one log entry; ``severity`` is a Cloud Logging severity name."""
    entry: dict[str, Any] = {"severity": severity, "message": message}
    entry.update(fields)
    entry.setdefault("time", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    sys.stdout.write(json.dumps(entry, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def info(message: str, **fields: Any) -> None:
    emit("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    emit("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    emit("ERROR", message, **fields)
