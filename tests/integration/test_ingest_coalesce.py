"""Concurrent single-document writes share BatchWrite RPCs (reads:
BatchGetDocuments), each with its own outcome, as the served function's
requests store them: coroutines on one event loop.

Against the Firestore emulator; the RPCs are observed (and held back, to make
a shared RPC certain) by wrapping the real send; every write is real. The
coalescers are those of the loop ``asyncio.run`` starts for each test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import pytest
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import firestore
from rbm_analytics.core.errors import Unavailable
from rbm_analytics.ingest.coalesce import AsyncCoalescer, Outcome
from rbm_analytics.ingest.records import Receipt, UserMessage, WebhookRecord, WriteCounts
from rbm_analytics.ingest.store import AGENT_MESSAGE_STATE, FirestoreStore
from rbm_analytics.ingest.writes import Committer, DocWrite, Transform

from tests.support import PROJECT

NO_RETRY = gretry.AsyncRetry(predicate=lambda exc: False, timeout=5)
T = TypeVar("T")


@pytest.fixture
def store(firestore_host: str) -> FirestoreStore:
    return FirestoreStore(firestore.Client(project=PROJECT), retention_days=90, deadline_s=5)


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


def put(store: FirestoreStore, record: WebhookRecord) -> WriteCounts:
    """Store one record on a loop of its own (before or after the concurrent part)."""
    return asyncio.run(store.put_async(record))


def user_message(i: int) -> UserMessage:
    return UserMessage(f"u{i}", "agent-1", "k" * 64, "text", None, None, 1_767_000_000_000_000, 2)


def receipt(mid: str, event_us: int) -> Receipt:
    return Receipt(mid, "agent-1", "k" * 64, "READ", None, event_us, event_us + 1)


async def until(ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not ready():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.005)


class Gate:
    """Wraps a coalescer's send: records each RPC's items; can hold the first one."""

    def __init__(self, coalescer: AsyncCoalescer, hold_first: bool = False) -> None:
        self.sizes: list[int] = []
        self.first_sent = asyncio.Event()
        self.release = asyncio.Event()
        if not hold_first:
            self.release.set()
        send = coalescer._send

        async def held(items: Sequence[Any], timeout: float) -> Sequence[Outcome]:
            self.sizes.append(len(items))
            if len(self.sizes) == 1:
                self.first_sent.set()
                await asyncio.wait_for(self.release.wait(), 10)
            return await send(items, timeout)

        coalescer._send = held


def writer_of(store: FirestoreStore) -> AsyncCoalescer:
    """The running loop's write coalescer (made on first use)."""
    return store._committer._loop_client().writer


def test_writes_waiting_together_share_one_rpc_and_each_gets_its_own_outcome(
    store: FirestoreStore,
) -> None:
    put(store, user_message(0))  # u0 already stored: its second copy is a duplicate

    async def main() -> tuple[Gate, list[WriteCounts], WriteCounts]:
        writer = writer_of(store)
        writer._max_in_flight = 1
        gate = Gate(writer, hold_first=True)
        first = asyncio.create_task(store.put_async(user_message(100)))
        await until(gate.first_sent.is_set, "the first RPC was not sent")
        later = [asyncio.create_task(store.put_async(user_message(i))) for i in range(10)]
        await until(lambda: len(writer._pending) == 10, "the ten writes did not queue")
        gate.release.set()
        return gate, list(await asyncio.gather(*later)), await first

    gate, counts, first = run(main)
    assert first == WriteCounts(stored=1)
    assert gate.sizes == [1, 10]  # the ten waiting writes went out in one RPC
    assert counts[0] == WriteCounts(duplicate=1)
    assert counts[1:] == [WriteCounts(stored=1)] * 9
    stored = {d.id for d in store._committer._client.collection("user_messages").stream()}
    assert stored == {"u100", *(f"u{i}" for i in range(10))}


def test_reads_before_receipt_writes_share_one_rpc(store: FirestoreStore) -> None:
    put(store, receipt("m3", 9_000))  # stored before: a later copy is a duplicate

    async def main() -> tuple[Gate, list[WriteCounts], WriteCounts]:
        reader = store._committer._loop_client().reader(AGENT_MESSAGE_STATE)
        reader._max_in_flight = 1
        gate = Gate(reader, hold_first=True)
        first = asyncio.create_task(store.put_async(receipt("m0", 5_000)))
        await until(gate.first_sent.is_set, "the first read was not sent")
        later = [asyncio.create_task(store.put_async(receipt(f"m{i}", 5_000))) for i in range(1, 6)]
        await until(lambda: len(reader._pending) == 5, "the five reads did not queue")
        gate.release.set()
        return gate, list(await asyncio.gather(*later)), await first

    gate, counts, first = run(main)
    assert first == WriteCounts(stored=1)
    assert gate.sizes == [1, 5]  # the five waiting reads went out in one RPC
    # m3 held 9,000: 5,000 is earlier, so it is stored too; each saw its own document.
    assert counts == [WriteCounts(stored=1)] * 5
    again = [put(store, receipt(f"m{i}", 5_000)) for i in range(6)]
    assert again == [WriteCounts(duplicate=1)] * 6


def test_two_writes_to_one_document_never_share_an_rpc(store: FirestoreStore) -> None:
    copies_n = 6

    async def main() -> tuple[Gate, list[WriteCounts]]:
        writer = writer_of(store)
        writer._max_in_flight = 1
        gate = Gate(writer, hold_first=True)
        first = asyncio.create_task(store.put_async(user_message(7)))
        await until(gate.first_sent.is_set, "the first RPC was not sent")
        copies = [asyncio.create_task(store.put_async(receipt("m1", 5_000))) for _ in range(6)]
        await until(lambda: len(writer._pending) == copies_n, "the copies did not queue")
        gate.release.set()
        counts = list(await asyncio.gather(*copies))
        await first
        return gate, counts

    gate, counts = run(main)
    # Firestore refuses a request writing one document twice: one per RPC.
    assert gate.sizes == [1] * (1 + copies_n)
    assert sum(counts, WriteCounts()) == WriteCounts(stored=1, duplicate=copies_n - 1)
    doc = store._committer._client.collection("agent_messages").document("m1").get().to_dict()
    assert doc is not None and doc["read_at_us"] == 5_000


def test_many_concurrent_requests_all_land_with_fewer_rpcs(store: FirestoreStore) -> None:
    n = 200

    async def main() -> tuple[Gate, list[WriteCounts]]:
        gate = Gate(writer_of(store))
        counts = await asyncio.gather(*(store.put_async(user_message(i)) for i in range(n)))
        return gate, list(counts)

    gate, counts = run(main)
    assert counts == [WriteCounts(stored=1)] * n
    assert sum(gate.sizes) == n
    assert len(gate.sizes) < n / 4  # shared RPCs, not one each
    assert len(store._committer._client.collection("user_messages").get()) == n


def test_one_invalid_write_fails_alone(firestore_host: str) -> None:
    committer = Committer(firestore.Client(project=PROJECT))
    good = [
        DocWrite("c", f"d{i}", {"x": i}, (Transform("updated_at", "server_time"),))
        for i in range(3)
    ]
    # Firestore refuses the whole request for a name with an empty id.
    bad = DocWrite("c", "", {"x": 9}, ())

    async def main() -> tuple[Gate, list[Any]]:
        writer = committer._loop_client().writer
        writer._max_in_flight = 1
        gate = Gate(writer, hold_first=True)
        first = asyncio.create_task(committer.commit_async([good[0]], NO_RETRY, 5))
        await until(gate.first_sent.is_set, "the first RPC was not sent")
        tasks = [
            asyncio.create_task(committer.commit_async([d], NO_RETRY, 5))
            for d in (good[1], bad, good[2])
        ]
        await until(lambda: len(writer._pending) == 3, "the three writes did not queue")
        gate.release.set()
        await first
        return gate, list(await asyncio.gather(*tasks, return_exceptions=True))

    gate, results = run(main)
    assert len(results[0]) == 1 and len(results[2]) == 1
    assert isinstance(results[1], gexc.InvalidArgument)
    assert gate.sizes[:2] == [1, 3]  # then each of the three again on its own
    assert sorted(gate.sizes[2:]) == [1, 1, 1]


def test_an_item_no_rpc_takes_in_time_fails_and_leaves_the_queue(firestore_host: str) -> None:
    committer = Committer(firestore.Client(project=PROJECT))
    late = DocWrite("c", "late", {"x": 1}, ())

    async def main() -> tuple[BaseException | None, int, Gate, list[Any]]:
        writer = committer._loop_client().writer
        writer._max_in_flight = 1
        gate = Gate(writer, hold_first=True)
        first = asyncio.create_task(
            committer.commit_async([DocWrite("c", "a", {}, ())], NO_RETRY, 5)
        )
        await until(gate.first_sent.is_set, "the first RPC was not sent")
        error: BaseException | None = None
        try:
            await committer.commit_async([late], NO_RETRY, 0.3)
        except gexc.DeadlineExceeded as exc:
            error = exc
        left = len(writer._pending)
        gate.release.set()
        await first
        # The coalescer still works: the next write goes out and lands.
        after = await committer.commit_async([DocWrite("c", "after", {}, ())], NO_RETRY, 5)
        return error, left, gate, after

    error, left, gate, after = run(main)
    assert isinstance(error, gexc.DeadlineExceeded)
    assert left == 0  # it was taken out, so no RPC will carry it later
    assert len(after) == 1 and gate.sizes == [1, 1]
    db = committer._client
    assert not db.collection("c").document("late").get().exists
    assert db.collection("c").document("after").get().exists


def test_a_cancelled_request_does_not_stall_the_others(store: FirestoreStore) -> None:
    async def main() -> list[WriteCounts]:
        writer = writer_of(store)
        writer._max_in_flight = 1
        gate = Gate(writer, hold_first=True)
        first = asyncio.create_task(store.put_async(user_message(1)))
        await until(gate.first_sent.is_set, "the first RPC was not sent")
        gone = asyncio.create_task(store.put_async(user_message(2)))  # its client goes away
        rest = [asyncio.create_task(store.put_async(user_message(i))) for i in (3, 4)]
        await until(lambda: len(writer._pending) == 3, "the writes did not queue")
        gone.cancel()
        gate.release.set()
        return [await first, *await asyncio.gather(*rest)]

    assert run(main) == [WriteCounts(stored=1)] * 3
    # The cancelled request's write was already queued: it lands (a resend
    # would be a duplicate), and nothing waits for it.
    ids = {d.id for d in store._committer._client.collection("user_messages").stream()}
    assert ids == {"u1", "u2", "u3", "u4"}


def test_storage_down_fails_every_waiting_write_with_503(
    firestore_emulator: Any, firestore_host: str
) -> None:
    store = FirestoreStore(firestore.Client(project=PROJECT), retention_days=90, deadline_s=1.5)

    async def main() -> list[Any]:
        return list(
            await asyncio.gather(
                *(store.put_async(user_message(i)) for i in range(8)), return_exceptions=True
            )
        )

    firestore_emulator.pause()
    try:
        results = run(main)
    finally:
        firestore_emulator.resume()
    assert all(isinstance(r, Unavailable) for r in results), results
    # What the sender does after a 503: send again. Writes the paused emulator
    # took may have landed meanwhile (duplicates now); none is lost.
    again = sum((put(store, user_message(i)) for i in range(8)), WriteCounts())
    assert again.stored + again.duplicate == 8
    assert len(store._committer._client.collection("user_messages").get()) == 8
