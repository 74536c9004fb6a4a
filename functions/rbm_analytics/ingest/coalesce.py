"""Concurrent single-document writes (and reads) coalesced into shared RPCs.

One instance serves many webhook requests at once, each storing one
document. Sent one Commit each, every event pays a whole RPC on both sides
(on the Firestore emulator about 1.4 ms of CPU per write, against about
0.3 to 0.6 ms per write inside a ``BatchWrite`` of 4 to 16; in the function about
0.3 ms of gRPC per call). ``BatchWrite`` applies each write independently and
answers one status and one result per write, so writes from different
requests can share an RPC without sharing an outcome:

* each request waits for *its own* write's status: the 200 still follows its
  own durable write, and a failed write fails only its own request;
* it is still one write round trip per event, with no read;
* group commit, not a timer: a write goes out at once when fewer than
  ``max_in_flight`` RPCs are under way, so a lone request waits for nothing;
  otherwise it joins the next RPC, which leaves as soon as one returns;
* ``BatchWrite`` refuses two writes to one document in one request, so a
  second write to a document waits for the next RPC (they may apply in
  either order, as two concurrent Commits may: every write here is safe in
  any order);
* an RPC that fails as a whole fails each of its writes with that error, and
  each request's own retry policy decides what to do; an RPC refused as
  invalid (one bad write would spoil its neighbours) sends each of its
  writes again on its own, so only the bad one fails.

``AsyncCoalescer`` serves coroutines on one event loop, as ingest's requests
are: a request waits on a future, and the RPC is itself a coroutine (gRPC's
asyncio API) on the same loop, so nothing blocks and no thread is involved.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any

from google.api_core import exceptions as gexc

# Firestore's limit on writes per BatchWrite request.
MAX_BATCH = 500
# RPCs under way at once (per coalescer). One: whatever arrives while an RPC
# is out goes in the next, so a request waits at most one round trip before
# its own RPC leaves. Two halve that wait but make smaller batches, and each
# RPC costs the client about the same CPU whatever it carries: with two, the
# served function's CPU per event was 20-25 % higher and its rate 10-15 %
# lower (``make bench``: ingest.events_per_s_16_clients, _32_clients).
MAX_IN_FLIGHT = 1

# (status code, status message, result) per item, in request order.
Outcome = tuple[int, str, Any]
AsyncSend = Callable[[Sequence[Any], float], Awaitable[Sequence[Outcome]]]

# A write's status code (google.rpc.Code) as the exception a Commit would
# raise for it, so callers handle both paths alike.
_ERRORS: dict[int, type[gexc.GoogleAPICallError]] = {
    3: gexc.InvalidArgument,
    4: gexc.DeadlineExceeded,
    5: gexc.NotFound,
    6: gexc.AlreadyExists,
    7: gexc.PermissionDenied,
    8: gexc.ResourceExhausted,
    9: gexc.FailedPrecondition,
    10: gexc.Aborted,
    13: gexc.InternalServerError,
    14: gexc.ServiceUnavailable,
    16: gexc.Unauthenticated,
}


def _error(code: int, message: str) -> gexc.GoogleAPICallError:
    return _ERRORS.get(code, gexc.Unknown)(message)


class _Slot:
    """One waiting item and, once answered, its result or error."""

    __slots__ = (
        "alone", "answered", "error", "event", "item", "name", "result", "sent"
    )  # fmt: skip

    def __init__(self, item: Any, name: Hashable, alone: bool, event: asyncio.Future[None]) -> None:
        self.item = item
        self.name = name
        self.alone = alone
        self.event = event  # what the waiter awaits
        self.sent = False
        # Until its status says otherwise, an item has not succeeded.
        self.answered = False
        self.result: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if not self.answered:
            raise _error(2, "the RPC gave no answer for this item")
        if self.error is not None:
            raise self.error
        return self.result


class _Isolate(Exception):
    """The shared RPC was refused as invalid: send this write on its own."""


class AsyncCoalescer:
    """Sends items concurrently submitted by the coroutines of one event loop,
    each for one document, through ``send`` (one RPC for many items; at most
    one item per document). Only that loop touches its state, so it needs no
    lock; ``send`` is a coroutine on that loop."""

    def __init__(
        self, send: AsyncSend, *, max_batch: int = MAX_BATCH, max_in_flight: int = MAX_IN_FLIGHT
    ) -> None:
        self._send = send
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: deque[_Slot] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Any, name: Hashable, timeout: float) -> Any:
        """Send ``item`` (for document ``name``); its result, or the error of its status.

        ``timeout`` bounds the RPC and the wait for one to take this item.
        """
        try:
            return await self._submit(item, name, timeout, alone=False)
        except _Isolate:
            return await self._submit(item, name, timeout, alone=True)

    async def _submit(self, item: Any, name: Hashable, timeout: float, *, alone: bool) -> Any:
        loop = asyncio.get_running_loop()
        slot = _Slot(item, name, alone, loop.create_future())
        self._pending.append(slot)
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            self._send_next(loop, timeout)
        if slot.sent:
            # In an RPC already: that RPC's own timeout bounds the wait.
            await slot.event
        else:
            expiry = loop.call_later(timeout, self._expire, slot)
            try:
                await slot.event
            finally:
                expiry.cancel()
        return slot.outcome()

    def _take_batch(self) -> list[_Slot]:
        """The next RPC's items: in order, one per document, an ``alone`` item by itself."""
        batch: list[_Slot] = []
        names: set[Hashable] = set()
        kept: deque[_Slot] = deque()
        while self._pending and len(batch) < self._max_batch:
            slot = self._pending.popleft()
            if slot.name in names or (slot.alone and batch):
                kept.append(slot)
                continue
            batch.append(slot)
            names.add(slot.name)
            if slot.alone:
                break
        for slot in batch:
            slot.sent = True
        self._pending.extendleft(reversed(kept))
        return batch

    @staticmethod
    def _failed(batch: list[_Slot], exc: Exception) -> None:
        """The RPC for ``batch`` failed as a whole with ``exc``."""
        if isinstance(exc, gexc.InvalidArgument) and len(batch) > 1:
            exc = _Isolate()
        for slot in batch:
            slot.error, slot.answered = exc, True

    @staticmethod
    def _settle(batch: list[_Slot], outcomes: Sequence[Outcome]) -> None:
        """Each item's result, or the error of its status."""
        for slot, (code, message, result) in zip(batch, outcomes, strict=True):
            if code == 0:
                slot.result = result
            else:
                slot.error = _error(code, message)
            slot.answered = True

    def _expire(self, slot: _Slot) -> None:
        if not slot.sent:
            self._pending.remove(slot)
            slot.error, slot.answered = _error(4, "no RPC took this item in time"), True
            _wake(slot)

    def _send_next(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Send one RPC of pending items, or, with none, leave one fewer in flight."""
        batch = self._take_batch()
        if not batch:
            self._in_flight -= 1
            return
        # The loop keeps only a weak reference to a task: hold it until done.
        task = loop.create_task(self._answer(loop, batch, timeout))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Slot], timeout: float
    ) -> None:
        try:
            outcomes = await self._send([s.item for s in batch], timeout)
        except Exception as exc:
            self._failed(batch, exc)
        else:
            self._settle(batch, outcomes)
        finally:
            for slot in batch:
                _wake(slot)
            self._send_next(loop, timeout)


def _wake(slot: _Slot) -> None:
    # A waiter that was cancelled (its client went away) has nothing to wake.
    if not slot.event.done():
        slot.event.set_result(None)
