"""End to end through the real Pub/Sub emulator: a push subscription into a served ingest.

A topic with a push subscription to ``/pubsub?token=…`` of ``ingest`` served by
functions-framework (as in Cloud Functions); events are published with the
Python Pub/Sub client, as RBM publishes them to an agent's topic. Every event
must be stored exactly once — also across a Firestore outage (the emulator
frozen with SIGSTOP), during which ingest answers 503 and Pub/Sub redelivers.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rbm_analytics.core import clients
from rbm_analytics.core.timeutil import format_us, now_us
from rbm_analytics_dev.local import emulators

from tests.integration.ingest_support import all_documents
from tests.support import BASE_ENV, PROJECT, PUSH_TOKEN, PUSH_TOKENS, REPO_ROOT

pubsub_v1 = pytest.importorskip("google.cloud.pubsub_v1")

SEED = 4242
TOPIC, SUBSCRIPTION = "rbm-acme-agent", "rbm-acme-agent-push"


@pytest.fixture(scope="module")
def pubsub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulators.ManagedProcess]:
    log = tmp_path_factory.mktemp("pubsub") / "emulator.log"
    proc = emulators.pubsub_emulator(emulators.free_port(), log_path=log).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def firestore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Its own emulator: this test freezes it."""
    proc = emulators.firestore_emulator(emulators.free_port(), log_path=tmp_path / "fs.log")
    proc.start()
    try:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", proc.host)
        clients.reset()
        yield proc
    finally:
        if proc.proc is not None:
            proc.resume()  # a frozen group would not act on SIGTERM
        proc.stop()


@pytest.fixture
def served(firestore: Any, tmp_path: Path) -> Iterator[tuple[emulators.ManagedProcess, Path]]:
    log = tmp_path / "ingest.log"
    port = emulators.free_port()
    proc = emulators.ManagedProcess(
        name="ingest",
        argv=[
            str(Path(sys.executable).parent / "functions-framework"),
            *("--source", str(REPO_ROOT / "functions" / "main.py")),
            *("--target", "ingest", "--port", str(port)),
        ],
        port=port,
        ready_url=f"http://127.0.0.1:{port}/",
        env={
            **BASE_ENV,
            "FIRESTORE_EMULATOR_HOST": firestore.host,
            "FIRESTORE_DEADLINE_SECONDS": "2",
            "PUBSUB_PUSH_TOKENS": PUSH_TOKENS,
            "PATH": os.environ["PATH"],
        },
        log_path=log,
    )
    proc.start()
    try:
        yield proc, log
    finally:
        proc.stop()


def _events(rng: random.Random, n: int, prefix: str) -> list[dict[str, Any]]:
    """Real-shaped RBM payloads with unique ids and recent times."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        base = {
            "senderPhoneNumber": f"+1555{rng.randrange(10**7):07d}",
            "agentId": "acme-agent",
            "sendTime": format_us(now_us() - rng.randrange(3_600_000_000)),
        }
        kind = rng.choice(("read", "delivered", "text", "typing"))
        if kind in ("read", "delivered"):
            out.append(
                {**base, "eventType": kind.upper(), "eventId": f"{prefix}e{i}",
                 "messageId": f"{prefix}m{i}"}
            )  # fmt: skip
        elif kind == "typing":
            out.append({**base, "eventType": "IS_TYPING", "eventId": f"{prefix}e{i}"})
        else:
            out.append({**base, "messageId": f"{prefix}u{i}", "text": "Where is my order?"})
    return out


def _document_count() -> int:
    return sum(len(d) for d in all_documents().values())


def _pubsub_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("message") == "ingest request" and entry.get("route") == "pubsub":
                lines.append(entry)
    return lines


def _wait_for(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_push_subscription_stores_every_event_once_even_across_a_storage_outage(
    pubsub: emulators.ManagedProcess,
    firestore: Any,
    served: tuple[emulators.ManagedProcess, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest, log = served
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub.host)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(PROJECT, f"{TOPIC}-{os.getpid()}")
    sub = subscriber.subscription_path(PROJECT, f"{SUBSCRIPTION}-{os.getpid()}")
    publisher.create_topic(name=topic)
    endpoint = f"http://127.0.0.1:{ingest.port}/pubsub?token={PUSH_TOKEN}"
    subscriber.create_subscription(
        name=sub, topic=topic, push_config={"push_endpoint": endpoint}, ack_deadline_seconds=10
    )
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    try:
        # 1. Storage up: everything published lands, once.
        first = _events(rng, 40, "a")
        for event in first:
            publisher.publish(topic, json.dumps(event).encode()).result(timeout=30)
        _wait_for(lambda: _document_count() == len(first), 120, "the first events")

        # 2. Storage frozen: ingest answers 503, Pub/Sub keeps the messages.
        firestore.pause()
        try:
            second = _events(rng, 20, "b")
            for event in second:
                publisher.publish(topic, json.dumps(event).encode()).result(timeout=30)
            _wait_for(lambda: any(e["status"] == 503 for e in _pubsub_lines(log)), 120, "a 503")
        finally:
            firestore.resume()
        # 3. Storage back: the redeliveries land, and nothing twice.
        total = len(first) + len(second)
        _wait_for(lambda: _document_count() == total, 180, "the redelivered events")
        time.sleep(3)  # redeliveries still in flight must find their documents
        assert _document_count() == total
    finally:
        subscriber.delete_subscription(subscription=sub)
        publisher.delete_topic(topic=topic)

    lines = _pubsub_lines(log)
    statuses = {e["status"] for e in lines}
    print(f"push requests: {len(lines)}, statuses {sorted(statuses)}")
    assert statuses <= {200, 503}, statuses
    assert any(e["status"] == 503 for e in lines)
    # No event counted as stored twice. (A write the frozen server took before
    # ingest gave up may land after all: its redelivery is then a duplicate.)
    assert sum(e["stored"] for e in lines if e["status"] == 200) <= total
    events = first + second
    docs = all_documents()
    assert set(docs["agent_messages"]) == {
        e["messageId"] for e in events if "eventType" in e and e["eventType"] != "IS_TYPING"
    }
    assert set(docs["user_messages"]) == {e["messageId"] for e in events if "text" in e}
    assert len(docs["user_events"]) == sum(e.get("eventType") == "IS_TYPING" for e in events)
