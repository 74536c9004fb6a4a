"""Relay: pass each verified webhook request on to the agent's own bot.

RBM delivers an agent's messages and events to one webhook only, so a team
whose bot already answers its users points that webhook at ``ingest`` and
``ingest`` forwards every request it accepted — the exact body bytes, with
``X-Goog-Signature`` and ``Content-Type`` as RBM sent them — to the bot. The
bot verifies the same signature with the same client token and needs no
change.

The store write and the forward run at the same time (the forward on a
small thread pool, the write on the request's thread). RBM gets 200 only
when both succeeded; a bot that answers anything but 2xx, refuses the
connection or misses ``FORWARD_TIMEOUT_SECONDS`` makes the request a 503,
so RBM redelivers: the store deduplicates, and the bot sees at-least-once
delivery, as it would from RBM directly.

Target per request: ``FORWARD_URLS``' entry for the payload's ``agentId``,
else ``FORWARD_URL``, else none (stored only). Connections to the bots are
pooled and kept alive across requests (one ``urllib3.PoolManager`` per
instance); nothing is retried here, since RBM's redelivery is the retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeVar

import urllib3

from rbm_analytics.core.config import Settings, get_settings
from rbm_analytics.core.errors import Unavailable
from rbm_analytics.core.http import Request

# Request headers passed on to the bot, exactly as received.
FORWARDED_HEADERS = ("X-Goog-Signature", "Content-Type")
USER_AGENT = "rbm-analytics-relay"
# Forwards in flight at once per instance; more wait for a thread. Above the
# function's request concurrency, so a forward never waits behind another.
MAX_FORWARDS = 128
# Pooled keep-alive connections kept per bot host.
POOL_CONNECTIONS = 32

Outcome = Literal["ok", "status", "timeout", "refused", "error"]
T = TypeVar("T")


@dataclass(frozen=True)
class Forwarded:
    """What happened to one forward, for the response and the log line."""

    outcome: Outcome
    status: int | None
    ms: float

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def log_fields(self) -> dict[str, Any]:
        return {
            "forward_outcome": self.outcome,
            "forward_status": self.status,
            "forward_ms": round(self.ms, 2),
        }


class ForwardFailed(Unavailable):
    """The bot did not take the request: 503, so RBM delivers it again."""


class Relay:
    """Forwards request bodies to the configured bots (see the module docstring)."""

    def __init__(
        self,
        default_url: str,
        per_agent: Mapping[str, str],
        timeout_s: float,
        *,
        pool: urllib3.PoolManager | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.default_url = default_url
        self.per_agent = dict(per_agent)
        self.timeout_s = timeout_s
        self._pool = pool or urllib3.PoolManager(
            num_pools=max(4, len(self.per_agent) + 1), maxsize=POOL_CONNECTIONS, block=False
        )
        # Threads start on first use: an instance that relays nothing has none.
        self._executor = executor or ThreadPoolExecutor(
            max_workers=MAX_FORWARDS, thread_name_prefix="forward"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Relay:
        """The relay these settings describe, shared by every request that uses them."""
        return _relay(settings.forward_url, settings.forward_urls, settings.forward_timeout_s)

    @property
    def enabled(self) -> bool:
        return bool(self.default_url or self.per_agent)

    def target(self, agent_id: str | None) -> str | None:
        """The bot's URL for ``agent_id``, or None when this agent is not relayed."""
        if agent_id is not None and agent_id in self.per_agent:
            return self.per_agent[agent_id]
        return self.default_url or None

    def forward(self, url: str, body: bytes, headers: Mapping[str, str]) -> Forwarded:
        """POST ``body`` with ``headers`` to ``url`` once, within the timeout; never raises."""
        started = time.perf_counter()
        sent = {**headers, "User-Agent": USER_AGENT}
        try:
            resp = self._pool.request(
                "POST",
                url,
                body=body,
                headers=sent,
                # Connect and read together within the deadline; RBM's own
                # redelivery is the retry, so none here and no redirects.
                timeout=urllib3.Timeout(total=self.timeout_s),
                retries=False,
                redirect=False,
                preload_content=True,
            )
        except urllib3.exceptions.NewConnectionError:
            # Before the timeout clause: urllib3 derives it from ConnectTimeoutError.
            return Forwarded("refused", None, _ms(started))
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            return Forwarded("timeout", None, _ms(started))
        except (urllib3.exceptions.HTTPError, OSError):
            return Forwarded("error", None, _ms(started))
        outcome: Outcome = "ok" if 200 <= resp.status < 300 else "status"
        return Forwarded(outcome, resp.status, _ms(started))

    async def alongside(
        self,
        url: str,
        request: Request,
        work: Callable[[], Awaitable[T]],
        fields: dict[str, Any],
    ) -> T:
        """Await ``work`` (the store write) while ``request`` is forwarded to ``url``.

        Returns ``work``'s result once both succeeded. Raises ``work``'s own
        error if it failed (after the forward finished, so its outcome is in
        the log line), else ``ForwardFailed``: either way a 503.
        """
        headers = {n: v for n in FORWARDED_HEADERS if (v := request.header(n)) is not None}
        submitted = time.perf_counter()
        future = self._executor.submit(self.forward, url, request.body, headers)
        try:
            result = await work()
        finally:
            forwarded = await self._wait(future, submitted)
            fields.update(forwarded.log_fields())
        if not forwarded.ok:
            reason = (
                f"answered HTTP {forwarded.status}"
                if forwarded.outcome == "status"
                else {
                    "timeout": f"did not answer within {self.timeout_s:g}s",
                    "refused": "refused the connection",
                }.get(forwarded.outcome, "could not be reached")
            )
            fields["outcome"] = "failed"  # whatever the store did, nothing was acknowledged
            raise ForwardFailed(f"the agent's webhook {reason}; retry later")
        return result

    async def _wait(self, future: Future[Forwarded], submitted: float) -> Forwarded:
        # urllib3's total timeout bounds the connect and each read; this
        # bounds the whole forward, however slowly the bot dribbles its answer.
        remaining = self.timeout_s - (time.perf_counter() - submitted)
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(future), timeout=max(0.0, remaining) + 0.5
            )
        except TimeoutError:
            return Forwarded("timeout", None, _ms(submitted))
        except Exception:  # a bug in forward(): still a 503, never a lost event
            return Forwarded("error", None, _ms(submitted))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


@lru_cache(maxsize=8)
def _relay(default_url: str, per_agent: tuple[tuple[str, str], ...], timeout_s: float) -> Relay:
    return Relay(default_url, dict(per_agent), timeout_s)


def instance_relay() -> Relay:
    """The instance's relay, over one connection pool and thread pool."""
    return Relay.from_settings(get_settings())
