"""Framework-free request and response values, and the one error handler.

``rbm_analytics.web`` turns the framework's requests (Flask's, or
Starlette's for the function served as ASGI) into ``Request`` and
``Response`` back; the core never sees either framework.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import IO, Any, NamedTuple

from rbm_analytics.core.errors import TooLarge

# Shared, read-only defaults (a named tuple's defaults are one object for all).
_NO_QUERY: Mapping[str, str] = MappingProxyType({})
# Every response carries these (``web.finish`` adds them to headers a handler
# set): browsers must not guess a CSV or JSON body into HTML. A response
# that sets none has them already, so nothing is rebuilt for it.
SECURITY_HEADERS: Mapping[str, str] = MappingProxyType({"X-Content-Type-Options": "nosniff"})


class Request(NamedTuple):
    """One request. Named tuples (here and ``Response``): immutable, and
    built in one C call where a frozen dataclass sets each field through
    ``object.__setattr__``; every request builds one of each."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""
    query: Mapping[str, str] = _NO_QUERY

    def header(self, name: str) -> str | None:
        # Flask's headers are case-insensitive already; Starlette's arrive as
        # a dict with lower-case names; plain dicts in tests may have any case.
        value = self.headers.get(name)
        if value is None:
            lower = name.lower()
            value = self.headers.get(lower)
            if value is None:
                for key, val in self.headers.items():
                    if key.lower() == lower:
                        return val
        return value


class Response(NamedTuple):
    status: int
    body: bytes | Iterable[bytes]
    content_type: str = "application/json"
    headers: Mapping[str, str] = SECURITY_HEADERS


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), headers=headers or SECURITY_HEADERS)


def read_body(stream: IO[bytes], content_length: int | None, limit: int) -> bytes:
    """Read at most ``limit`` bytes; a larger body is refused without buffering it."""
    check_declared_length(content_length, limit)
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise over_limit(limit)
    return data


def check_declared_length(content_length: int | None, limit: int) -> None:
    """Refuse a body whose declared length is over ``limit`` before reading any of it."""
    if content_length is not None and content_length > limit:
        raise TooLarge(f"request body is {content_length} bytes; the limit is {limit}")


def over_limit(limit: int) -> TooLarge:
    """The error for a body that turned out longer than ``limit`` while being read."""
    return TooLarge(f"request body is over the limit of {limit} bytes")
