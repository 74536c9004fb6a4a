"""Errors that carry their HTTP status; one handler turns them into JSON."""

from __future__ import annotations


class HttpError(Exception):
    """An error the caller should see, with the status it maps to."""

    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(HttpError):
    status = 400


class Unauthorized(HttpError):
    status = 401


class Forbidden(HttpError):
    status = 403


class NotFound(HttpError):
    status = 404


class MethodNotAllowed(HttpError):
    status = 405

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"method {method} is not allowed; use {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )


class Conflict(HttpError):
    """The request contradicts what is stored (another agent's message id)."""

    status = 409


class PayloadTooLarge(HttpError):
    status = 413


class ServiceUnavailable(HttpError):
    """Storage failed or timed out: the sender must retry, nothing was acknowledged."""

    status = 503


class ConfigError(ServiceUnavailable):
    """The deployment is misconfigured; 503 so senders retry once it is fixed."""
