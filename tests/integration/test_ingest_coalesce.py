"""Concurrent single-document writes share BatchWrite RPCs (reads: BatchGetDocuments),
each with its own outcome.

Against the Firestore emulator. The RPCs are observed (and, to make a shared
RPC certain, held back) by wrapping the real send; every write is real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import firestore
from rbm_analytics.core.errors import Unavailable
from rbm_analytics.ingest.coalesce import Coalescer, Outcome
from rbm_analytics.ingest.records import Receipt, UserMessage, WriteCounts
from rbm_analytics.ingest.store import AGENT_MESSAGE_STATE, FirestoreStore
from rbm_analytics.ingest.writes import Committer, DocWrite, Transform

from tests.support import PROJECT

NO_RETRY = gretry.Retry(predicate=lambda exc: False, timeout=5)


class Gate:
    """Wraps a coalescer's send: records each RPC's writes; can hold the first one."""

    def __init__(self, coalescer: Coalescer, hold_first: bool = False) -> None:
        self.sizes: list[int] = []
        self.first_sent = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        send: Callable[[Sequence[Any], float], Sequence[Outcome]] = coalescer._send
        self._lock = threading.Lock()

        def held(writes: Sequence[Any], timeout: float) -> Sequence[Outcome]:
            with self._lock:
                self.sizes.append(len(writes))
                first = len(self.sizes) == 1
            if first:
                self.first_sent.set()
                self.release.wait(10)
            return send(writes, timeout)

        coalescer._send = held


def wait_pending(coalescer: Coalescer, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(coalescer._pending) < n:
        assert time.monotonic() < deadline, f"only {len(coalescer._pending)} writes queued"
        time.sleep(0.01)


@pytest.fixture
def store(firestore_host: str) -> FirestoreStore:
    return FirestoreStore(firestore.Client(project=PROJECT), retention_days=90, deadline_s=5)


def coalescer_of(store: FirestoreStore) -> Coalescer:
    return store._committer._coalescer


def user_message(i: int) -> UserMessage:
    return UserMessage(f"u{i}", "agent-1", "k" * 64, "text", None, None, 1_767_000_000_000_000, 2)


def receipt(mid: str, event_us: int) -> Receipt:
    return Receipt(mid, "agent-1", "k" * 64, "READ", None, event_us, event_us + 1)


def test_writes_waiting_together_share_one_rpc_and_each_gets_its_own_outcome(
    store: FirestoreStore,
) -> None:
    store.put(user_message(0))  # u0 already stored: its second copy is a duplicate
    coalescer = coalescer_of(store)
    coalescer._max_in_flight = 1
    gate = Gate(coalescer, hold_first=True)
    with ThreadPoolExecutor(12) as pool:
        first = pool.submit(store.put, user_message(100))
        assert gate.first_sent.wait(10)
        later = [pool.submit(store.put, user_message(i)) for i in range(10)]
        wait_pending(coalescer, 10)
        gate.release.set()
        counts = [f.result(10) for f in later]
        assert first.result(10) == WriteCounts(stored=1)
    assert gate.sizes == [1, 10]  # the ten waiting writes went out in one RPC
    assert counts[0] == WriteCounts(duplicate=1)
    assert counts[1:] == [WriteCounts(stored=1)] * 9
    stored = {d.id for d in store._committer._client.collection("user_messages").stream()}
    assert stored == {"u100", *(f"u{i}" for i in range(10))}


def test_reads_before_receipt_writes_share_one_rpc(store: FirestoreStore) -> None:
    store.put(receipt("m3", 9_000))  # stored before: a later copy is a duplicate
    reader = store._committer._reader(AGENT_MESSAGE_STATE)
    reader._max_in_flight = 1
    gate = Gate(reader, hold_first=True)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(store.put, receipt("m0", 5_000))
        assert gate.first_sent.wait(10)
        later = [pool.submit(store.put, receipt(f"m{i}", 5_000)) for i in range(1, 6)]
        wait_pending(reader, 5)
        gate.release.set()
        counts = [f.result(10) for f in later]
        assert first.result(10) == WriteCounts(stored=1)
    assert gate.sizes == [1, 5]  # the five waiting reads went out in one RPC
    # m3 held 9,000: 5,000 is earlier, so it is stored too; each saw its own document.
    assert counts == [WriteCounts(stored=1)] * 5
    again = [store.put(receipt(f"m{i}", 5_000)) for i in range(6)]
    assert again == [WriteCounts(duplicate=1)] * 6


def test_two_writes_to_one_document_never_share_an_rpc(store: FirestoreStore) -> None:
    coalescer = coalescer_of(store)
    coalescer._max_in_flight = 1
    gate = Gate(coalescer, hold_first=True)
    copies_n = 6
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(store.put, user_message(7))
        assert gate.first_sent.wait(10)
        copies = [pool.submit(store.put, receipt("m1", 5_000)) for _ in range(copies_n)]
        wait_pending(coalescer, copies_n)
        gate.release.set()
        counts = [f.result(10) for f in copies]
        first.result(10)
    # Firestore refuses a request writing one document twice: one per RPC.
    assert gate.sizes == [1] * (1 + copies_n)
    assert sum(counts, WriteCounts()) == WriteCounts(stored=1, duplicate=copies_n - 1)
    doc = store._committer._client.collection("agent_messages").document("m1").get().to_dict()
    assert doc is not None and doc["read_at_us"] == 5_000


def test_many_concurrent_requests_all_land_with_fewer_rpcs(store: FirestoreStore) -> None:
    gate = Gate(coalescer_of(store))
    n = 200
    with ThreadPoolExecutor(32) as pool:
        counts = list(pool.map(store.put, [user_message(i) for i in range(n)]))
    assert counts == [WriteCounts(stored=1)] * n
    assert sum(gate.sizes) == n
    assert len(store._committer._client.collection("user_messages").get()) == n


def test_one_invalid_write_fails_alone(firestore_host: str) -> None:
    committer = Committer(firestore.Client(project=PROJECT))
    coalescer = committer._coalescer
    coalescer._max_in_flight = 1
    gate = Gate(coalescer, hold_first=True)
    good = [
        DocWrite("c", f"d{i}", {"x": i}, (Transform("updated_at", "server_time"),))
        for i in range(3)
    ]
    # Firestore refuses the whole request for a name with an empty id.
    bad = DocWrite("c", "", {"x": 9}, ())
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(committer.commit, [good[0]], NO_RETRY, 5)
        assert gate.first_sent.wait(10)
        futures = [pool.submit(committer.commit, [d], NO_RETRY, 5) for d in (good[1], bad, good[2])]
        wait_pending(coalescer, 3)
        gate.release.set()
        first.result(10)
        assert len(futures[0].result(10)) == 1
        with pytest.raises(gexc.InvalidArgument):
            futures[1].result(10)
        assert len(futures[2].result(10)) == 1
    assert gate.sizes[:2] == [1, 3]  # then each of the three again on its own
    assert sorted(gate.sizes[2:]) == [1, 1, 1]


def test_storage_down_fails_every_waiting_write_with_503(
    firestore_emulator: Any, firestore_host: str
) -> None:
    store = FirestoreStore(firestore.Client(project=PROJECT), retention_days=90, deadline_s=1.5)
    firestore_emulator.pause()
    paused = time.monotonic()
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(store.put, user_message(i)) for i in range(8)]
            for f in futures:
                with pytest.raises(Unavailable):
                    got = f.result(30)
                    print("answered while storage was down:", got, time.monotonic() - paused)
    finally:
        firestore_emulator.resume()
    # What the sender does after a 503: send again. Writes the paused emulator
    # took may have landed meanwhile (duplicates now); none is lost.
    again = sum((store.put(user_message(i)) for i in range(8)), WriteCounts())
    assert again.stored + again.duplicate == 8
    assert len(store._committer._client.collection("user_messages").get()) == 8
