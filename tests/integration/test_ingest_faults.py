"""Firestore down: every event request gets a 503 in bounded time, nothing is acknowledged,
and once storage is back, resending the same requests lands everything.

The test runs its own emulator (the session one serves other tests) and
takes it away twice: frozen with SIGSTOP (a hung server: connections open,
no answers, the worst case for a client) and stopped (connection refused).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from rbm_analytics.core import clients, collections
from rbm_analytics.ingest import store
from rbm_analytics_dev.local import emulators

from tests.app_client import client_for
from tests.integration.ingest_support import all_documents
from tests.support import PROJECT, bearer, rbm_sample, rbm_sample_bytes, signed_webhook

DEADLINE_S = 2.0
# A correctness bound, not a benchmark: the deadline caps retries; one more
# attempt's worth and the machine's load make up the slack.
BOUND_S = 3 * DEADLINE_S + 2.0
SAMPLES = (
    "user_event_read",
    "user_event_delivered",
    "user_event_is_typing",
    "server_event_ttl_revoked",
    "user_message_text",
    "user_message_file",
)


def _requests() -> list[tuple[str, bytes, dict[str, str]]]:
    reqs = []
    for sample in SAMPLES:
        body, headers = signed_webhook(rbm_sample_bytes(sample))
        reqs.append(("/", body, headers))
    batch = json.dumps(rbm_sample("agent_messages_batch")).encode()
    reqs.append(("/agent-messages", batch, bearer()))
    return reqs


# Records each request carries: the six webhook events and the three-message batch.
RECORDS_PER_REQUEST = [1] * len(SAMPLES) + [3]
EXPECTED_COUNTS = {store.AGENT_MESSAGES: 4, store.USER_MESSAGES: 2, store.USER_EVENTS: 2}


@pytest.fixture
def own_firestore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    proc = emulators.firestore_emulator(emulators.free_port(), log_path=tmp_path / "fs.log")
    proc.start()
    try:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", proc.host)
        monkeypatch.setenv("FIRESTORE_DEADLINE_SECONDS", str(DEADLINE_S))
        clients.reset()
        yield proc
    finally:
        if proc.proc is not None:
            proc.resume()  # a frozen group would not act on SIGTERM
        proc.stop()


def _send_all(client: Any) -> list[tuple[int, float, dict[str, Any]]]:
    """All requests at once, as RBM's concurrent deliveries arrive; (status, seconds, body)."""

    def send(req: tuple[str, bytes, dict[str, str]]) -> tuple[int, float, dict[str, Any]]:
        path, body, headers = req
        started = time.monotonic()
        resp = client.post(path, data=body, headers=headers)
        return resp.status_code, time.monotonic() - started, resp.get_json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(send, _requests()))


def _assert_all_503_in_bounded_time(results: list[tuple[int, float, dict[str, Any]]]) -> None:
    statuses = [status for status, _, _ in results]
    slowest = max(seconds for _, seconds, _ in results)
    print(f"503 latencies (s): {[round(s, 2) for _, s, _ in results]}, slowest {slowest:.2f}")
    assert statuses == [503] * len(results), statuses
    assert all("retry" in body["error"] for _, _, body in results)
    assert slowest < BOUND_S


def _resend_until_landed(client: Any, attempts: int = 5) -> list[dict[str, int]]:
    """Resend as RBM would (it retries any non-200); storage is back, so it must land."""
    for attempt in range(attempts):
        results = _send_all(client)
        if all(status == 200 for status, _, _ in results):
            return [body for _, _, body in results]
        print(f"resend {attempt}: {[s for s, _, _ in results]}")
        time.sleep(1)
    raise AssertionError("storage is back but resending did not land")


def _assert_everything_stored(answers: list[dict[str, int]]) -> None:
    # A write the frozen server took before the client gave up may have landed
    # after all: its resend is then a duplicate. Either way each record is answered.
    assert [a["stored"] + a["duplicate"] for a in answers] == RECORDS_PER_REQUEST
    docs = all_documents()
    assert {name: len(d) for name, d in docs.items()} == EXPECTED_COUNTS
    read = docs[store.AGENT_MESSAGES]["6f1c2b9e-4a3d-4c6e-9b7a-1d2e3f405162"]
    assert read["read_at_us"] == 1_767_377_565_001_000
    assert read["delivered_at_us"] == 1_767_259_804_512_000


def test_hung_storage_gives_503_then_resend_lands(ingest_app: Any, own_firestore: Any) -> None:
    client = client_for(ingest_app)
    # A first request opens the channel, so the outage hits a live connection.
    # A fresh emulator on a busy machine can miss the deadline once or twice.
    warm_body, warm_headers = signed_webhook(rbm_sample_bytes("user_message_location"))
    warm = [client.post("/", data=warm_body, headers=warm_headers).status_code for _ in range(5)]
    assert 200 in warm, warm
    emulators.wipe_firestore(own_firestore.host, PROJECT)

    own_firestore.pause()
    try:
        results = _send_all(client)
    finally:
        own_firestore.resume()
    _assert_all_503_in_bounded_time(results)
    _assert_everything_stored(_resend_until_landed(client))


def test_stopped_storage_gives_503_then_resend_lands(ingest_app: Any, own_firestore: Any) -> None:
    client = client_for(ingest_app)
    own_firestore.stop()  # the whole process group: connections are refused
    results = _send_all(client)
    _assert_all_503_in_bounded_time(results)

    # Back on the same address, empty: nothing was acknowledged, so nothing is missing.
    own_firestore.start()
    assert all_documents() == {name: {} for name in collections.COLLECTIONS}
    _assert_everything_stored(_resend_until_landed(client))
