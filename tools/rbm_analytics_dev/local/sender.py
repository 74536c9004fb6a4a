"""Send planned traffic to an ``ingest`` endpoint over HTTP, as RBM and an agent backend do.

Webhook events go to ``POST /`` in RBM's envelope, signed with the client
token (``X-Goog-Signature``); sent-log batches go to ``POST /agent-messages``
with the API key. Worker threads each keep their own keep-alive connection.
503s, other 5xx, 429 and connection errors are retried with exponential
backoff until ``give_up_after_s``: an event is never dropped silently — a
request that still fails is counted and reported, and the run exits non-zero.
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import random
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from rbm_analytics.core.config import Credential, parse_credentials
from rbm_analytics.core.errors import ConfigError
from rbm_analytics.core.timeutil import format_us, now_us
from rbm_analytics.ingest.auth import sign

from rbm_analytics_dev.local.simulate import PlannedRequest

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_STOP = object()


class SendError(RuntimeError):
    """The target cannot take traffic; the message says what to fix."""


def _entries(raw: str, flag: str) -> tuple[Credential, ...]:
    try:
        entries = parse_credentials(raw, flag)
    except ConfigError as exc:
        raise SendError(exc.message) from None
    if not entries:
        raise SendError(f"{flag} is empty")
    return entries


def _secret_for(entries: tuple[Credential, ...], agent_id: str, flag: str) -> str:
    bound = [c for c in entries if c.agents is not None and agent_id in c.agents]
    unbound = [c for c in entries if c.agents is None]
    for cred in bound or unbound:
        return cred.secret
    raise SendError(f"{flag} has no entry for agent {agent_id} (add SECRET:{agent_id})")


@dataclass(frozen=True)
class Target:
    """An ingest deployment: its base URL and the secrets it was configured with.

    ``client_token`` and ``api_key`` are either one secret, used for every
    agent, or entries as ``RBM_CLIENT_TOKENS`` and ``AGENT_API_KEYS`` hold them
    (``SECRET:agentA|agentB,SECRET``): each agent's traffic is then signed
    with the token and sent with the key bound to it, as that agent's own
    RBM registration and backend would; an unbound entry serves the rest.
    """

    url: str
    client_token: str
    api_key: str

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SendError(f"--url must be an http:// or https:// URL, got {self.url!r}")
        self.client_tokens()
        self.api_keys()

    def client_tokens(self) -> tuple[Credential, ...]:
        return _entries(self.client_token, "--client-token")

    def api_keys(self) -> tuple[Credential, ...]:
        return _entries(self.api_key, "--api-key")

    def token_for(self, agent_id: str) -> str:
        """The client token that signs ``agent_id``'s webhook events."""
        return _secret_for(self.client_tokens(), agent_id, "--client-token")

    def key_for(self, agent_id: str) -> str:
        """The API key that sends ``agent_id``'s sent records."""
        return _secret_for(self.api_keys(), agent_id, "--api-key")

    def check_agents(self, agent_ids: Iterable[str]) -> None:
        """SendError naming the first agent no token or key is configured for."""
        for agent in agent_ids:
            self.token_for(agent)
            self.key_for(agent)

    @property
    def webhook_url(self) -> str:
        return self.url.rstrip("/") + "/"

    @property
    def agent_messages_url(self) -> str:
        return self.url.rstrip("/") + "/agent-messages"


def envelope(
    data: bytes,
    *,
    message_id: str = "1",
    publish_time: str | None = None,
    subscription: str = "projects/rbm-agent/subscriptions/rbm",
) -> bytes:
    """RBM's webhook envelope around the payload bytes ``data``."""
    return json.dumps(
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "messageId": message_id,
                "publishTime": publish_time or format_us(now_us()),
            },
            "subscription": subscription,
        }
    ).encode()


def signed_webhook(data: bytes, token: str, **envelope_fields: str) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one webhook delivery of ``data``, signed with ``token``."""
    body = envelope(data, **envelope_fields)
    return body, {"Content-Type": "application/json", "X-Goog-Signature": sign(data, token)}


def webhook_request(payload: dict[str, Any], token: str, seq: int) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one webhook delivery, in RBM's envelope."""
    data = json.dumps(payload, separators=(",", ":")).encode()
    agent = payload.get("agentId", "agent")
    return signed_webhook(
        data, token, message_id=str(seq), subscription=f"projects/rbm-{agent}/subscriptions/rbm"
    )


def agent_messages_request(body_json: Any, api_key: str) -> tuple[bytes, dict[str, str]]:
    return json.dumps(body_json, separators=(",", ":")).encode(), {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {api_key}",
    }


class _Connection:
    """One keep-alive HTTP(S) connection, reopened after any error."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self.conn = cls(self.host, self.port, timeout=self.timeout_s)
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if resp.will_close:
            self.close()
        return resp.status, data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def preflight(target: Target, timeout_s: float = 10.0) -> None:
    """Check that ``target`` answers and knows the token and key, storing nothing.

    The webhook's verification handshake checks the client token; an empty
    sent-log batch is authenticated first and then rejected as malformed (400),
    so 400 means the key is right.
    """
    conn = _Connection(target.url, timeout_s)
    try:
        for i, token in enumerate(c.secret for c in target.client_tokens()):
            hello = json.dumps({"clientToken": token, "secret": "simulate"}).encode()
            status, body = conn.post(
                _path(target.webhook_url), hello, {"Content-Type": "application/json"}
            )
            if status == 403:
                which = "this client token" if i == 0 else f"client token {i + 1}"
                raise SendError(
                    f"{target.webhook_url} does not know {which}; pass the ones in "
                    "its RBM_CLIENT_TOKENS with --client-token"
                )
            if status != 200 or body != b"simulate":
                raise SendError(
                    f"{target.webhook_url} answered the webhook handshake with HTTP {status}; "
                    "is --url the ingest function's URL?"
                )
        for i, key in enumerate(c.secret for c in target.api_keys()):
            status, _ = conn.post(
                _path(target.agent_messages_url),
                b'{"agentMessages": []}',
                {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
            )
            if status == 401:
                which = "the API key" if i == 0 else f"API key {i + 1}"
                raise SendError(
                    f"{target.agent_messages_url} rejects {which}; pass the ones in "
                    "its AGENT_API_KEYS with --api-key"
                )
            if status != 400:
                raise SendError(f"{target.agent_messages_url} answered HTTP {status} to a check")
    except (OSError, http.client.HTTPException) as exc:
        raise SendError(
            f"cannot reach {target.url} ({exc}); is the stack running ('make run' or "
            "'rbm-analytics serve'), or is --url right?"
        ) from None
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# Progress and report
# ---------------------------------------------------------------------------
class Progress:
    """A one-line progress bar with the rate, redrawn with ``\\r`` on stderr."""

    def __init__(self, total: int | None, stream: TextIO | None = None, width: int = 28) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, done: int, events: int, retries: int, *, force: bool = False) -> None:
        now = time.monotonic()
        # A terminal gets a live line; a log file a line every 5 seconds.
        interval = 0.2 if self.tty else 5.0
        if not force and now - self.last_draw < interval:
            return
        self.last_draw = now
        elapsed = max(now - self.started, 1e-6)
        rate = events / elapsed
        if self.total:
            frac = min(1.0, done / self.total)
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            eta = (elapsed / frac - elapsed) if frac > 0 else 0.0
            line = (
                f"[{bar}] {done:,}/{self.total:,} requests {frac:4.0%}  "
                f"{rate:,.0f} events/s  eta {eta:,.0f}s"
            )
        else:
            line = f"{done:,} requests  {events:,} events  {rate:,.0f} events/s  {elapsed:,.0f}s"
        if retries:
            line += f"  retries {retries:,}"
        self.stream.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class SendReport:
    """What was sent, and what the endpoint said."""

    requests: int = 0
    events: Counter[str] = field(default_factory=Counter)  # first copies by kind
    duplicates: int = 0
    retries: int = 0
    failures: int = 0
    failure_samples: list[str] = field(default_factory=list)
    stored: int = 0
    duplicate_answers: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def total_events(self) -> int:
        return sum(self.events.values()) + self.duplicates

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "events": dict(sorted(self.events.items())),
            "duplicates": self.duplicates,
            "retries": self.retries,
            "failures": self.failures,
            "stored": self.stored,
            "duplicate_answers": self.duplicate_answers,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.total_events / self.seconds, 1) if self.seconds else 0,
        }

    def render(self) -> str:
        order = ("sent", "DELIVERED", "READ", "IS_TYPING", "text", "suggestion_reply",
                 "suggestion_action", "file", "location")  # fmt: skip
        labels = {
            "sent": "agent messages (sent log)",
            "DELIVERED": "DELIVERED receipts",
            "READ": "READ receipts",
            "IS_TYPING": "IS_TYPING events",
            "text": "user text messages",
            "suggestion_reply": "suggestion replies",
            "suggestion_action": "suggestion actions",
            "file": "user files",
            "location": "user locations",
        }
        rate = self.total_events / self.seconds if self.seconds else 0.0
        lines = ["", "Sent" + (" (interrupted)" if self.interrupted else "") + ":"]
        for kind in order:
            if self.events.get(kind):
                lines.append(f"  {self.events[kind]:>9,}  {labels[kind]}")
        lines += [
            f"  {self.duplicates:>9,}  duplicate copies (at-least-once delivery)",
            f"  {self.requests:>9,}  HTTP requests in {self.seconds:,.1f}s ({rate:,.0f} events/s)",
            f"  {self.retries:>9,}  retries",
            f"  {self.failures:>9,}  failed requests",
            f"  ingest answered: {self.stored:,} stored, {self.duplicate_answers:,} duplicate",
        ]
        lines += [f"  failure: {s}" for s in self.failure_samples]
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Sender
# ---------------------------------------------------------------------------
class Sender:
    """Sends requests with ``concurrency`` worker threads; see the module doc."""

    def __init__(
        self,
        target: Target,
        *,
        concurrency: int = 8,
        timeout_s: float = 30.0,
        give_up_after_s: float = 300.0,
        realtime: bool = False,
        progress: Progress | None = None,
        on_sent: Callable[[PlannedRequest], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if concurrency < 1:
            raise SendError("concurrency must be at least 1")
        self.target = target
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.give_up_after_s = give_up_after_s
        self.realtime = realtime
        self.progress = progress
        self.on_sent = on_sent
        self._sleep = sleep
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._seq = 0
        self.report = SendReport()

    def run(self, requests: Iterable[PlannedRequest]) -> SendReport:
        """Send everything (or until interrupted) and return the report."""
        work: queue.Queue[Any] = queue.Queue(maxsize=self.concurrency * 4)
        threads = [
            threading.Thread(target=self._worker, args=(work,), daemon=True, name=f"sender-{i}")
            for i in range(self.concurrency)
        ]
        for t in threads:
            t.start()
        started = time.monotonic()
        try:
            for req in requests:
                if self.realtime:
                    wait = (req.deliver_us - now_us()) / 1e6
                    if wait > 0:
                        self._sleep(wait)
                while True:  # put with a timeout, so Ctrl-C is seen promptly
                    try:
                        work.put(req, timeout=0.5)
                        break
                    except queue.Full:
                        continue
        except KeyboardInterrupt:
            self.report.interrupted = True
            # Finish what is in flight, drop what is queued: it was never sent.
            self._drain(work)
        finally:
            for _ in threads:
                work.put(_STOP)
            for t in threads:
                t.join()
            self.report.seconds = time.monotonic() - started
            self._draw(force=True)
            if self.progress:
                self.progress.close()
        return self.report

    @staticmethod
    def _drain(work: queue.Queue[Any]) -> None:
        while True:
            try:
                work.get_nowait()
            except queue.Empty:
                return

    def _draw(self, force: bool = False) -> None:
        if self.progress:
            with self._lock:
                r = self.report
                self.progress.update(
                    r.requests + r.failures, r.total_events, r.retries, force=force
                )

    def _worker(self, work: queue.Queue[Any]) -> None:
        conns = {
            "webhook": _Connection(self.target.webhook_url, self.timeout_s),
            "agent-messages": _Connection(self.target.agent_messages_url, self.timeout_s),
        }
        try:
            while True:
                req = work.get()
                if req is _STOP:
                    return
                self._send(conns[req.route], req)
        finally:
            for c in conns.values():
                c.close()

    def _encode(self, req: PlannedRequest) -> tuple[str, bytes, dict[str, str]]:
        # One agent per request: a webhook event, or one agent backend's batch.
        agent = req.deliveries[0].event.agent_id
        if req.route == "webhook":
            with self._lock:
                self._seq += 1
                seq = self._seq
            token = self.target.token_for(agent)
            body, headers = webhook_request(req.body_json(), token, seq)
            return _path(self.target.webhook_url), body, headers
        body, headers = agent_messages_request(req.body_json(), self.target.key_for(agent))
        return _path(self.target.agent_messages_url), body, headers

    def _send(self, conn: _Connection, req: PlannedRequest) -> None:
        path, body, headers = self._encode(req)
        deadline = time.monotonic() + self.give_up_after_s
        attempt = 0
        while True:
            problem: str
            try:
                status, answer = conn.post(path, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                status, answer, problem = 0, b"", f"{type(exc).__name__}: {exc}"
            else:
                if status == 200:
                    self._record(req, answer)
                    return
                problem = f"HTTP {status}: {answer[:200].decode(errors='replace')}"
            if status and status not in RETRY_STATUSES:
                break  # the request itself is wrong: retrying cannot help
            if time.monotonic() >= deadline:
                problem = f"gave up after {self.give_up_after_s:.0f}s; last: {problem}"
                break
            attempt += 1
            with self._lock:
                self.report.retries += 1
            backoff = min(5.0, 0.05 * 2**attempt) * (0.5 + random.random() / 2)
            self._sleep(backoff)
        with self._lock:
            self.report.failures += 1
            if len(self.report.failure_samples) < 5:
                self.report.failure_samples.append(f"{req.route}: {problem}")
        self._draw()

    def _record(self, req: PlannedRequest, answer: bytes) -> None:
        try:
            counts = json.loads(answer)
        except ValueError:
            counts = {}
        with self._lock:
            r = self.report
            r.requests += 1
            for d in req.deliveries:
                if d.copy:
                    r.duplicates += 1
                else:
                    r.events[d.event.kind] += 1
            if isinstance(counts, dict):
                r.stored += int(counts.get("stored", 0))
                r.duplicate_answers += int(counts.get("duplicate", 0))
        if self.on_sent is not None:
            self.on_sent(req)
        self._draw()
