"""What can go wrong, in the domain's own words.

Domain modules raise these; only the edge (``rbm_analytics.web``) turns them
into HTTP statuses, so parsing, storage and SQL code never speak HTTP. Each
carries a message that is safe to show the caller: it names the field or
setting at fault, never a value that could hold personal data.
"""

from __future__ import annotations


class DomainError(Exception):
    """An error the caller should see, with a message safe to show."""

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidInput(DomainError):
    """The request is malformed or names something invalid: resending it cannot help."""


class Unauthenticated(DomainError):
    """No credential, or one that matches no configured secret."""


class NotPermitted(DomainError):
    """A verified credential used for something outside what it is bound to."""


class NotFound(DomainError):
    """No such route or page."""


class MethodNotAllowed(DomainError):
    """The route exists but does not take this method."""

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"method {method} is not allowed; use {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )


class Conflict(DomainError):
    """The request contradicts what is stored (another agent's message id)."""


class TooLarge(DomainError):
    """The body is over the configured limit."""


class Unavailable(DomainError):
    """Storage failed or timed out: the sender must retry, nothing was acknowledged."""


class ConfigError(Unavailable):
    """The deployment is misconfigured; senders retry once it is fixed."""
