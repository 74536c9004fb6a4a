"""Firestore reads and writes encoded straight to protobuf.

The high-level client (``DocumentReference.set`` / ``WriteBatch``) builds
every write through proto-plus wrappers, which costs about 300 µs of CPU per
webhook event — more than everything else ingest does together. Here each
``Write`` is filled in place inside the request that sends it, from a copy
of a template that already holds its transforms and precondition: a few
microseconds (``make bench``: ingest.handler_cpu_per_event). The RPCs are
the client's own Commit, BatchWrite and BatchGetDocuments calls, with the
client's channel, metadata and emulator handling.

A write here is a merge (``set(..., merge=True)``: the named fields are
replaced, the rest kept) or a create (fails with ``AlreadyExists`` when the
document exists), plus field transforms applied after it, in the order given.
A merge may carry the ``update_time`` a read returned: Firestore then applies
it only if the document has not changed since (else ``FailedPrecondition``),
which is optimistic concurrency without a transaction's locks. ``get`` is the
matching read: the named fields of many documents, with their update times,
in one BatchGetDocuments call.

Ingest's requests are coroutines, so ``get_async`` and ``commit_async`` are
the calls it makes, over gRPC's asyncio API: a Firestore ``AsyncClient`` with
the same project, database and credentials, one per event loop (its channel
belongs to the loop; the deployed function has one). A single document goes
through that loop's ``AsyncCoalescer``, which shares ``BatchWrite`` (and, for
reads, ``BatchGetDocuments``) RPCs between concurrent requests while each
still waits for its own write's status. Nothing blocks the loop and no thread
is involved: against a thread-pool variant of the same calls, the served
function's CPU per event fell by about a third
(``make bench``: ingest.cpu_per_event_16_clients). ``get`` and ``commit``
are the blocking forms, one RPC each, for tools and benchmarks.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from google.api_core import retry as gretry
from google.cloud import firestore
from google.cloud.firestore_v1.types import common, document, write
from google.cloud.firestore_v1.types import firestore as firestore_types

from rbm_analytics.ingest.coalesce import AsyncCoalescer, Outcome

_Write = write.Write.pb()
_FieldTransform = write.DocumentTransform.FieldTransform.pb()
_Value = document.Value.pb()
_Precondition = common.Precondition.pb()
_DocumentMask = common.DocumentMask.pb()
_CommitRequest = firestore_types.CommitRequest
_CommitResponse = firestore_types.CommitResponse
_BatchGetRequest = firestore_types.BatchGetDocumentsRequest
_BatchGetResponse = firestore_types.BatchGetDocumentsResponse
_BatchWriteRequest = firestore_types.BatchWriteRequest
_BatchWriteResponse = firestore_types.BatchWriteResponse
# The raw classes requests are built from, then wrapped (not copied) into
# the client's proto-plus types.
_RawCommitRequest = _CommitRequest.pb()
_RawBatchWriteRequest = _BatchWriteRequest.pb()
_REQUEST_TIME = _FieldTransform.ServerValue.REQUEST_TIME
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FieldValue = str | int | datetime | None
TransformOp = Literal["minimum", "increment", "server_time"]


class Transform(NamedTuple):
    field: str
    op: TransformOp
    value: int = 0


class DocWrite(NamedTuple):
    """One document write: ``fields`` and ``shared`` set (merge or create),
    then ``transforms``.

    ``create``: only if the document does not exist. ``update_time`` (from
    ``Committer.get``): only if the document is unchanged since that read.
    ``shared``: fields whose values many writes repeat (an agent, a kind, the
    expiry second), as (name, value) pairs. They are encoded once, into a
    cached template each such write starts as a copy of: one C call instead
    of a few Python ones per field.
    """

    collection: str
    doc_id: str
    fields: Mapping[str, FieldValue]
    transforms: tuple[Transform, ...]
    create: bool = False
    update_time: Any = None
    shared: tuple[tuple[str, FieldValue], ...] = ()

    def all_fields(self) -> dict[str, FieldValue]:
        """Every field the write sets, the shared ones included."""
        return {**dict(self.shared), **self.fields}


class Snapshot(NamedTuple):
    """The fields a read asked for (those present) and the document's update time."""

    fields: Mapping[str, FieldValue]
    update_time: Any


def _set_value(target: Any, value: FieldValue) -> None:
    """Fill a Value message in place (cheaper than building and copying one)."""
    if value is None:
        target.null_value = 0
    elif isinstance(value, bool):  # bool is an int: refuse it rather than store 0/1
        raise TypeError("booleans are not stored")
    elif isinstance(value, int):
        target.integer_value = value
    elif isinstance(value, str):
        target.string_value = value
    else:
        # Exact integer seconds and nanos; Timestamp.FromDatetime gets the same
        # through several conversions and costs a few times more per write.
        delta = value - _EPOCH
        timestamp = target.timestamp_value
        timestamp.seconds = delta.days * 86_400 + delta.seconds
        if delta.microseconds:  # zero is the default (expire_at is whole seconds)
            timestamp.nanos = delta.microseconds * 1000


def _value(value: FieldValue) -> Any:
    out = _Value()
    _set_value(out, value)
    return out


def _decode(value: Any) -> FieldValue:
    """The stored value of the kinds this project writes (others read as None)."""
    kind = value.WhichOneof("value_type")
    if kind == "integer_value":
        return int(value.integer_value)
    if kind == "string_value":
        return str(value.string_value)
    if kind == "timestamp_value":
        ts = value.timestamp_value
        return datetime.fromtimestamp(ts.seconds, UTC).replace(microsecond=ts.nanos // 1000)
    return None


# Templates live while their shared values recur: the expiry second changes
# every second, so a few templates per kind of write are in use at a time.
@functools.lru_cache(maxsize=1024)
def _template(
    transforms: tuple[Transform, ...], create: bool, shared: tuple[tuple[str, FieldValue], ...]
) -> Any:
    """A ``Write`` with only ``transforms``, the ``shared`` fields and, for a
    create, its precondition: every write with the same ones starts as a copy
    of it (one C call, where setting the same parts one by one costs several)."""
    pb = _Write()
    for key, value in shared:
        _set_value(pb.update.fields[key], value)
    for t in transforms:
        ft = pb.update_transforms.add()
        ft.field_path = t.field
        if t.op == "server_time":
            ft.set_to_server_value = _REQUEST_TIME
        elif t.op == "minimum":
            ft.minimum.integer_value = t.value
        else:
            ft.increment.integer_value = t.value
    if create:
        pb.current_document.exists = False  # sets the oneof, as a message would
    return pb


class Committer:
    """Commits ``DocWrite`` lists through a client's Commit or BatchWrite RPC."""

    def __init__(self, client: firestore.Client) -> None:
        self._client = client
        self._database = client._database_string
        self._documents = f"{self._database}/documents"
        # Futures and gRPC channels belong to one event loop: each loop has its
        # own client and coalescers (one in the deployed function; tests may
        # run several).
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )
        self._last: tuple[asyncio.AbstractEventLoop, _LoopClient] | None = None

    def encode(self, doc: DocWrite) -> Any:
        """``doc`` as a ``Write`` protobuf of its own."""
        pb = _Write()
        self.fill(pb, doc)
        return pb

    def fill(self, pb: Any, doc: DocWrite) -> None:
        """Encode ``doc`` into ``pb``, an empty ``Write``: a request's own
        ``writes.add()``, so the write is built where it is sent (a ``Write``
        built apart is copied whole into its request, which cost about as
        much as building it)."""
        pb.CopyFrom(_template(doc.transforms, doc.create, doc.shared))
        update = pb.update
        update.name = f"{self._documents}/{doc.collection}/{doc.doc_id}"
        fields = update.fields
        for key, value in doc.fields.items():
            # The kinds nearly every field is, by exact type and without a
            # call (a bool is not an int here: it reaches its refusal).
            kind = type(value)
            if kind is int:
                fields[key].integer_value = value
            elif kind is str:
                fields[key].string_value = value
            elif value is None:
                fields[key].null_value = 0
            else:
                _set_value(fields[key], value)
        if not doc.create:
            pb.update_mask.field_paths.extend(doc.fields)
            pb.update_mask.field_paths.extend(key for key, _ in doc.shared)
            if doc.update_time is not None:
                pb.current_document.update_time.CopyFrom(doc.update_time)

    def get(
        self,
        collection: str,
        doc_ids: Iterable[str],
        field_paths: Sequence[str],
        retry: gretry.Retry,
        timeout: float,
    ) -> dict[str, Snapshot]:
        """The named fields of each existing document, by id; missing ones are left out.

        One ``BatchGetDocuments`` RPC (the blocking form, for tools and benchmarks).
        """
        prefix = f"{self._documents}/{collection}/"
        found = self._batch_get([prefix + i for i in doc_ids], field_paths, retry, timeout)
        return {name[len(prefix) :]: snap for name, snap in found.items()}

    async def get_async(
        self,
        collection: str,
        doc_ids: Iterable[str],
        field_paths: Sequence[str],
        retry: gretry.AsyncRetry,
        timeout: float,
    ) -> dict[str, Snapshot]:
        """``get`` for a coroutine."""
        prefix = f"{self._documents}/{collection}/"
        names = [prefix + i for i in doc_ids]
        mask = tuple(field_paths)
        own = self._loop_client()
        if len(names) == 1:
            snap = await retry(own.reader(mask).submit)(names[0], names[0], timeout)
            return {} if snap is None else {names[0][len(prefix) :]: snap}
        found = await retry(own.batch_get)(names, mask, timeout)
        return {name[len(prefix) :]: snap for name, snap in found.items()}

    def _loop_client(self) -> _LoopClient:
        """The running event loop's client and coalescers (made on first use)."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop:  # the one loop a function has
            return last[1]
        own = self._loops.get(loop)
        if own is None:
            own = self._loops[loop] = _LoopClient(self)
        self._last = (loop, own)
        return own

    def _batch_get(
        self,
        names: Sequence[str],
        field_paths: Sequence[str],
        retry: gretry.Retry | None,
        timeout: float,
    ) -> dict[str, Snapshot]:
        stream = self._client._firestore_api.batch_get_documents(
            request=self._batch_get_request(names, field_paths),
            metadata=self._client._rpc_metadata,
            retry=retry,
            timeout=timeout,
        )
        out: dict[str, Snapshot] = {}
        for response in stream:
            _add_found(response, out)
        return out

    def _batch_get_request(self, names: Sequence[str], field_paths: Sequence[str]) -> Any:
        raw = _BatchGetRequest.pb()(
            database=self._database,
            documents=names,
            mask=_DocumentMask(field_paths=field_paths),
        )
        return _BatchGetRequest.wrap(raw)

    def commit(self, docs: Sequence[DocWrite], retry: gretry.Retry, timeout: float) -> list[Any]:
        """Commit all writes atomically in one Commit RPC (the blocking form, for
        tools and benchmarks); one raw ``WriteResult`` per write."""
        return self._commit(docs, retry, timeout)

    async def commit_async(
        self, docs: Sequence[DocWrite], retry: gretry.AsyncRetry, timeout: float
    ) -> list[Any]:
        """``commit`` for a coroutine. One write shares a ``BatchWrite`` RPC with
        concurrent ones (atomic alone; the same errors a Commit raises:
        ``AlreadyExists``, ...); several go in one Commit RPC."""
        own = self._loop_client()
        if len(docs) == 1:
            doc = docs[0]
            return [await retry(own.writer.submit)(doc, (doc.collection, doc.doc_id), timeout)]
        return await retry(own.commit)(docs, timeout)

    def _commit(
        self, docs: Sequence[DocWrite], retry: gretry.Retry | None, timeout: float
    ) -> list[Any]:
        """One Commit RPC of all ``docs``, atomically."""
        response = self._client._firestore_api.commit(
            request=self._commit_request(docs),
            metadata=self._client._rpc_metadata,
            retry=retry,
            timeout=timeout,
        )
        return list(_CommitResponse.pb(response).write_results)

    def _commit_request(self, docs: Sequence[DocWrite]) -> Any:
        raw = _RawCommitRequest(database=self._database)
        for doc in docs:
            self.fill(raw.writes.add(), doc)
        return _CommitRequest.wrap(raw)

    def _batch_write(self, docs: Sequence[DocWrite], timeout: float) -> list[Outcome]:
        """One BatchWrite RPC of ``docs`` (blocking): each write applied on its own."""
        response = self._client._firestore_api.batch_write(
            request=self._batch_write_request(docs),
            metadata=self._client._rpc_metadata,
            retry=None,
            timeout=timeout,
        )
        return _outcomes(response)

    def _batch_write_request(self, docs: Sequence[DocWrite]) -> Any:
        raw = _RawBatchWriteRequest(database=self._database)
        for doc in docs:
            self.fill(raw.writes.add(), doc)
        return _BatchWriteRequest.wrap(raw)


def _add_found(response: Any, out: dict[str, Snapshot]) -> None:
    """Add a BatchGetDocuments response's document, if it found one, to ``out``."""
    pb = _BatchGetResponse.pb(response)
    if pb.HasField("found"):
        found = pb.found
        fields = {k: _decode(v) for k, v in found.fields.items()}
        out[found.name] = Snapshot(fields, found.update_time)


def _outcomes(response: Any) -> list[Outcome]:
    """A BatchWrite's (status code, message, WriteResult) per write, in order."""
    pb = _BatchWriteResponse.pb(response)
    return [
        (status.code, status.message, result)
        for status, result in zip(pb.status, pb.write_results, strict=True)
    ]


class _LoopClient:
    """One event loop's Firestore ``AsyncClient`` (the committer's project,
    database and credentials) and its coalescers: the writes, and the reads of
    each field mask. Its RPCs are the blocking ones', awaited."""

    def __init__(self, committer: Committer) -> None:
        sync = committer._client
        self._committer = committer
        self.client = firestore.AsyncClient(
            project=sync.project, database=sync._database, credentials=sync._credentials
        )
        self.writer = AsyncCoalescer(self._batch_write)
        self._readers: dict[tuple[str, ...], AsyncCoalescer] = {}

    def reader(self, mask: tuple[str, ...]) -> AsyncCoalescer:
        reader = self._readers.get(mask)
        if reader is None:
            reader = self._readers[mask] = AsyncCoalescer(functools.partial(self._read, mask))
        return reader

    async def batch_get(
        self, names: Sequence[str], field_paths: Sequence[str], timeout: float
    ) -> dict[str, Snapshot]:
        stream = await self.client._firestore_api.batch_get_documents(
            request=self._committer._batch_get_request(names, field_paths),
            metadata=self.client._rpc_metadata,
            retry=None,  # the caller's policy retries the whole read
            timeout=timeout,
        )
        out: dict[str, Snapshot] = {}
        async for response in stream:
            _add_found(response, out)
        return out

    async def _read(
        self, mask: tuple[str, ...], names: Sequence[Any], timeout: float
    ) -> list[Outcome]:
        found = await self.batch_get(names, mask, timeout)
        return [(0, "", found.get(name)) for name in names]

    async def commit(self, docs: Sequence[DocWrite], timeout: float) -> list[Any]:
        response = await self.client._firestore_api.commit(
            request=self._committer._commit_request(docs),
            metadata=self.client._rpc_metadata,
            retry=None,  # the caller's policy retries the whole commit
            timeout=timeout,
        )
        return list(_CommitResponse.pb(response).write_results)

    async def _batch_write(self, docs: Sequence[Any], timeout: float) -> list[Outcome]:
        response = await self.client._firestore_api.batch_write(
            request=self._committer._batch_write_request(docs),
            metadata=self.client._rpc_metadata,
            # No retry of a shared RPC: each write's own caller retries its write.
            retry=None,
            timeout=timeout,
        )
        return _outcomes(response)
