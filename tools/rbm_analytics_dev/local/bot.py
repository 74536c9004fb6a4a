"""A demo bot: the agent's own webhook that ``ingest`` relays to.

It does what any RBM bot does with a delivery — verify ``X-Goog-Signature``
(base64 HMAC-SHA512 of the decoded ``message.data`` with the client token) —
and records what it got, so tests and the local stack can check that every
event reached it byte for byte. It answers 200 to a verified delivery and 401
to anything else, as a bot should.

    python -m rbm_analytics_dev.local.bot --port 8070 --token local-client-token-acme \\
        --record .data/bot/received.jsonl

``GET /`` answers a JSON summary (deliveries, verified, distinct bodies).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from rbm_analytics.ingest.auth import sign


@dataclass(frozen=True)
class Delivery:
    """One POST the bot received, as received."""

    body: bytes
    signature: str | None
    content_type: str | None
    verified: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "body": base64.b64encode(self.body).decode(),
            "signature": self.signature,
            "content_type": self.content_type,
            "verified": self.verified,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Delivery:
        return cls(
            base64.b64decode(doc["body"]), doc["signature"], doc["content_type"], doc["verified"]
        )


def verify(body: bytes, signature: str | None, tokens: Sequence[str]) -> bool:
    """What the bot's own code checks: the signature over the decoded message.data."""
    if not signature:
        return False
    try:
        data = base64.b64decode(json.loads(body)["message"]["data"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return False
    return any(sign(data, token) == signature for token in tokens)


class DemoBot:
    """The bot on a loopback port; ``status`` and ``delay_s`` let tests make it misbehave."""

    def __init__(self, tokens: Sequence[str], port: int = 0, record: Path | None = None) -> None:
        self.tokens = tuple(tokens)
        self.record = record
        self.deliveries: list[Delivery] = []
        self.status: int | None = None  # None: 200 when verified, else 401
        self.delay_s = 0.0
        self._lock = threading.Lock()
        bot = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the relay's pool expects
            # Headers and body go out as two writes: without this, Nagle's
            # algorithm and the client's delayed ACK hold the body ~40 ms.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = bot.receive(
                    body, self.headers.get("X-Goog-Signature"), self.headers.get("Content-Type")
                )
                self._answer(status, b"ok" if status == 200 else b"rejected")

            def do_GET(self) -> None:
                self._answer(200, json.dumps(bot.summary()).encode(), "application/json")

            def _answer(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # The relay may have given up waiting (its timeout): nothing to tell it.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per delivery would drown the stack's output

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def receive(self, body: bytes, signature: str | None, content_type: str | None) -> int:
        """Record one delivery and say which status the bot answers it with."""
        delivery = Delivery(body, signature, content_type, verify(body, signature, self.tokens))
        with self._lock:
            self.deliveries.append(delivery)
            if self.record is not None:
                with self.record.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(delivery.to_json()) + "\n")
            status, delay = self.status, self.delay_s
        if delay:
            time.sleep(delay)
        if status is not None:
            return status
        return 200 if delivery.verified else 401

    def summary(self) -> dict[str, int]:
        with self._lock:
            return {
                "deliveries": len(self.deliveries),
                "verified": sum(d.verified for d in self.deliveries),
                "distinct_bodies": len({d.body for d in self.deliveries}),
            }

    def start(self) -> DemoBot:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join()


def read_record(path: Path) -> list[Delivery]:
    """Every delivery a bot started with ``record=path`` wrote down."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Delivery.from_json(json.loads(line)) for line in lines if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rbm_analytics_dev.local.bot")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", action="append", required=True, help="client token (repeat)")
    parser.add_argument("--record", type=Path, help="append each delivery here (JSON lines)")
    args = parser.parse_args(argv)
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
    bot = DemoBot(args.token, args.port, args.record)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=bot.server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"demo bot on {bot.url}", flush=True)
    bot.server.serve_forever()
    bot.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
