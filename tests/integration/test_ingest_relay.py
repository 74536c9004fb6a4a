"""Relay: ingest stores each verified webhook request and forwards it to the agent's own bot.

The bot is the demo bot (a real HTTP server on loopback that verifies the
signature with the client token, as any RBM bot does); storage is the
Firestore emulator. RBM's side is played by the test: it gets 200 only when
both the store and the bot took the request, and a 503 otherwise, after which
it redelivers, as RBM does for 7 days.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from rbm_analytics.core import clients
from rbm_analytics.ingest import store
from rbm_analytics_dev.local import emulators
from rbm_analytics_dev.local.bot import DemoBot

from tests.integration.ingest_support import (
    all_documents,
    assert_nothing_stored,
    request_logs,
    webhook,
)
from tests.support import CLIENT_TOKEN, OTHER_CLIENT_TOKEN, rbm_sample_bytes, signed_webhook

READ_MESSAGE = "6f1c2b9e-4a3d-4c6e-9b7a-1d2e3f405162"
TEXT_MESSAGE = "MsG9hJ8kL7zX6cV5bN4mQ3"


@pytest.fixture
def bot() -> Iterator[DemoBot]:
    b = DemoBot([CLIENT_TOKEN, OTHER_CLIENT_TOKEN]).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def relayed(ingest_client: Any, bot: DemoBot, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Any:
    """ingest with FORWARD_URL pointing at the bot."""
    monkeypatch.setenv("FORWARD_URL", bot.url)
    monkeypatch.setenv("FORWARD_TIMEOUT_SECONDS", "1")
    clients.reset()
    capsys.readouterr()
    return ingest_client


def _deliver(client: Any, sample: str) -> tuple[Any, bytes, dict[str, str]]:
    body, headers = signed_webhook(rbm_sample_bytes(sample))
    return client.post("/", data=body, headers=headers), body, headers


def test_bot_200_gives_rbm_200_stores_and_hands_the_bot_the_exact_request(
    relayed: Any, bot: DemoBot, capsys: pytest.CaptureFixture[str]
) -> None:
    resp, body, headers = _deliver(relayed, "user_message_text")
    assert resp.status_code == 200
    assert resp.get_json() == {"stored": 1, "duplicate": 0}
    assert TEXT_MESSAGE in all_documents()[store.USER_MESSAGES]
    (got,) = bot.deliveries
    assert got.body == body  # byte for byte
    assert got.signature == headers["X-Goog-Signature"]
    assert got.content_type == "application/json"
    assert got.verified  # the bot's own check with the client token passes
    (line,) = request_logs(capsys)
    assert line["forward_outcome"] == "ok"
    assert line["forward_status"] == 200
    assert isinstance(line["forward_ms"], float)


def test_store_and_forward_happen_at_once(
    ingest_client: Any, bot: DemoBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the bot still holds the request, the event is already stored."""
    # Generous: this is about order, not speed (the bot waits for the test).
    monkeypatch.setenv("FORWARD_URL", bot.url)
    monkeypatch.setenv("FORWARD_TIMEOUT_SECONDS", "30")
    clients.reset()
    release, arrived = threading.Event(), threading.Event()
    original = bot.receive

    def held(body: bytes, signature: str | None, ctype: str | None) -> int:
        arrived.set()
        release.wait(30)
        return original(body, signature, ctype)

    bot.receive = held  # type: ignore[method-assign]
    body, headers = signed_webhook(rbm_sample_bytes("user_event_read"))
    answer: list[Any] = []
    sender = threading.Thread(
        target=lambda: answer.append(ingest_client.post("/", data=body, headers=headers))
    )
    sender.start()
    try:
        assert arrived.wait(30)
        stored = threading.Event()
        for _ in range(300):
            if READ_MESSAGE in all_documents()[store.AGENT_MESSAGES]:
                stored.set()
                break
            stored.wait(0.1)
        assert stored.is_set(), "the store write waited for the bot"
        assert not answer, "RBM was answered before the bot answered"
    finally:
        release.set()
        sender.join(60)
    assert answer[0].status_code == 200


@pytest.mark.parametrize("failure", ["status_500", "timeout", "refused"])
def test_bot_failure_gives_503_and_redelivery_ends_with_one_record_the_bot_has_seen(
    failure: str,
    ingest_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = emulators.free_port()
    monkeypatch.setenv("FORWARD_URL", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("FORWARD_TIMEOUT_SECONDS", "0.5")
    clients.reset()
    bot = None if failure == "refused" else DemoBot([CLIENT_TOKEN], port).start()
    try:
        if bot is not None and failure == "status_500":
            bot.status = 500
        if bot is not None and failure == "timeout":
            bot.delay_s = 2.0
        capsys.readouterr()
        first, body, headers = _deliver(ingest_client, "user_event_read")
        assert first.status_code == 503
        assert "retry" in first.get_json()["error"]
        # Stored or not, nothing was acknowledged; the store may already hold it.
        (line,) = request_logs(capsys)
        expected = {"status_500": "status", "timeout": "timeout", "refused": "refused"}[failure]
        assert line["forward_outcome"] == expected
        assert line["forward_status"] == (500 if failure == "status_500" else None)
        assert line["status"] == 503 and line["outcome"] == "failed"
        assert line["stored"] == 1  # stored meanwhile: the redelivery will be a duplicate

        # The bot recovers (or comes up); RBM redelivers the same request.
        if bot is None:
            bot = DemoBot([CLIENT_TOKEN], port).start()
        bot.status, bot.delay_s = None, 0.0
        again = ingest_client.post("/", data=body, headers=headers)
        assert again.status_code == 200
        answer = again.get_json()
        assert answer["stored"] + answer["duplicate"] == 1
        docs = all_documents()[store.AGENT_MESSAGES]
        assert list(docs) == [READ_MESSAGE]
        assert docs[READ_MESSAGE]["read_at_us"] == 1_767_377_565_001_000
        assert body in {d.body for d in bot.deliveries if d.verified}
    finally:
        if bot is not None:
            bot.stop()


def test_storage_failure_gives_503_even_when_the_bot_took_it(
    ingest_client: Any, bot: DemoBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORWARD_URL", bot.url)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{emulators.free_port()}")
    monkeypatch.setenv("FIRESTORE_DEADLINE_SECONDS", "1")
    clients.reset()
    resp, body, _ = _deliver(ingest_client, "user_message_text")
    assert resp.status_code == 503
    # The bot got it at the same time; RBM's redelivery will bring it again.
    assert [d.body for d in bot.deliveries] == [body]


def test_handshake_is_answered_by_ingest_and_not_forwarded(relayed: Any, bot: DemoBot) -> None:
    body = json.dumps({"clientToken": CLIENT_TOKEN, "secret": "1234567890"}).encode()
    resp = relayed.post("/", data=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200 and resp.data == b"1234567890"
    unknown = json.dumps({"clientToken": "not-ours", "secret": "1"}).encode()
    assert relayed.post("/", data=unknown).status_code == 403
    assert bot.deliveries == []


def test_rejected_requests_are_never_forwarded(
    relayed: Any, bot: DemoBot, capsys: pytest.CaptureFixture[str]
) -> None:
    body, headers = signed_webhook(rbm_sample_bytes("user_message_text"))
    wrong = signed_webhook(rbm_sample_bytes("user_message_text"), token="someone-else")[1]
    invalid = signed_webhook(b'{"agentId": "acme-agent", "senderPhoneNumber": "+1"}')
    statuses = [
        relayed.post("/", data=body, headers=wrong).status_code,
        relayed.post("/", data=body, headers={"Content-Type": "application/json"}).status_code,
        relayed.post("/", data=invalid[0], headers=invalid[1]).status_code,
        relayed.post("/", data=b"{not json", headers=headers).status_code,
        relayed.get("/").status_code,
    ]
    assert statuses == [401, 401, 400, 400, 405]
    assert bot.deliveries == []
    assert_nothing_stored()
    assert all("forward_outcome" not in line for line in request_logs(capsys))


def test_per_agent_targets_fall_back_to_forward_url(
    ingest_client: Any, bot: DemoBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = DemoBot([CLIENT_TOKEN]).start()
    try:
        monkeypatch.setenv("FORWARD_URLS", f"acme-agent={other.url}")
        monkeypatch.setenv("FORWARD_URL", bot.url)
        clients.reset()
        acme = rbm_sample_bytes("user_message_text")
        globex = acme.replace(b"acme-agent", b"globex-agent").replace(b"MsG9", b"MsX9")
        assert webhook(ingest_client, acme).status_code == 200
        assert webhook(ingest_client, globex).status_code == 200
        assert [json.loads(d.body) for d in other.deliveries] == [
            json.loads(signed_webhook(acme)[0])
        ]
        assert len(bot.deliveries) == 1 and b"globex" not in other.deliveries[0].body
    finally:
        other.stop()


def test_an_agent_without_a_target_is_stored_only(
    ingest_client: Any, bot: DemoBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORWARD_URLS", f"globex-agent={bot.url}")
    clients.reset()
    resp = webhook(ingest_client, "user_message_text")  # acme-agent: no entry, no FORWARD_URL
    assert resp.status_code == 200 and resp.get_json() == {"stored": 1, "duplicate": 0}
    assert bot.deliveries == []


def test_agent_launch_event_is_forwarded_not_stored(relayed: Any, bot: DemoBot) -> None:
    launch = json.dumps(
        {
            "eventId": "launch-1",
            "agentId": "acme-agent",
            "oldLaunchState": "LAUNCH_STATE_PENDING",
            "newLaunchState": "LAUNCH_STATE_LAUNCHED",
        }
    ).encode()
    resp = webhook(relayed, launch)
    assert resp.status_code == 200
    assert resp.get_json() == {"stored": 0, "duplicate": 0, "ignored": 1}
    assert [d.verified for d in bot.deliveries] == [True]
    assert_nothing_stored()
    bot.status = 500  # the bot must take it too, or RBM redelivers
    assert webhook(relayed, launch).status_code == 503
