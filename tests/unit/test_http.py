"""The framework-free request/response layer: body limit, headers, error JSON."""

from __future__ import annotations

import io
import json

import pytest
from rbm_analytics import web
from rbm_analytics.core import errors
from rbm_analytics.core.errors import InvalidInput, MethodNotAllowed, TooLarge
from rbm_analytics.core.http import Request, read_body


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.requested = 0

    def read(self, size: int | None = -1) -> bytes:
        self.requested += 0 if size is None or size < 0 else size
        return super().read(size)


def test_body_at_the_limit_is_read() -> None:
    assert read_body(io.BytesIO(b"x" * 10), 10, 10) == b"x" * 10
    assert read_body(io.BytesIO(b"x" * 10), None, 10) == b"x" * 10


def test_declared_length_over_the_limit_is_refused_unread() -> None:
    stream = CountingStream(b"x" * 11)
    with pytest.raises(TooLarge, match="request body is 11 bytes; the limit is 10"):
        read_body(stream, 11, 10)
    assert stream.requested == 0


def test_undeclared_length_reads_at_most_one_byte_past_the_limit() -> None:
    stream = CountingStream(b"x" * 10_000)
    with pytest.raises(TooLarge, match="over the limit of 10 bytes"):
        read_body(stream, None, 10)
    assert stream.requested == 11


def test_a_lying_content_length_cannot_pass_more_than_the_limit() -> None:
    with pytest.raises(TooLarge):
        read_body(io.BytesIO(b"x" * 50), 5, 10)


def test_headers_are_case_insensitive() -> None:
    req = Request("POST", "/", {"x-goog-signature": "abc", "Authorization": "Bearer k"})
    assert req.header("X-Goog-Signature") == "abc"
    assert req.header("authorization") == "Bearer k"
    assert req.header("Content-Type") is None


def test_a_domain_error_becomes_json_with_its_status_and_headers_at_the_edge() -> None:
    resp = web.error(InvalidInput("sendTime is missing"), {})
    assert (resp.status, resp.content_type) == (400, "application/json")
    assert json.loads(resp.body) == {"error": "sendTime is missing"}  # type: ignore[arg-type]
    resp = web.error(MethodNotAllowed("GET", ("POST",)), {})
    assert resp.status == 405
    assert dict(resp.headers) == {"Allow": "POST"}


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.InvalidInput("x"), 400),
        (errors.Unauthenticated("x"), 401),
        (errors.NotPermitted("x"), 403),
        (errors.NotFound("x"), 404),
        (errors.Conflict("x"), 409),
        (errors.TooLarge("x"), 413),
        (errors.Unavailable("x"), 503),
        (errors.ConfigError("x"), 503),
        (errors.DomainError("x"), 500),
    ],
)
def test_each_domain_error_has_one_status(exc: errors.DomainError, status: int) -> None:
    assert web.status_of(exc) == status
