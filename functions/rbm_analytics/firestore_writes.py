"""Firestore writes encoded straight to protobuf, committed in one RPC.

The high-level client (``DocumentReference.set`` / ``WriteBatch``) builds
every write through proto-plus wrappers, which costs about 300 µs of CPU per
webhook event — more than everything else ingest does together. Building the
same ``Write`` messages with the raw protobuf classes costs about 20 µs
(``make bench``: ingest.handler_cpu_per_event). The RPC itself is the
client's own Commit call, with the client's channel, metadata and emulator
handling.

A write here is a merge (``set(..., merge=True)``: the named fields are
replaced, the rest kept) or a create (fails with ``AlreadyExists`` when the
document exists), plus field transforms applied after it, in the order given;
the commit answers one result per transform in that order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from google.api_core import retry as gretry
from google.cloud import firestore
from google.cloud.firestore_v1.types import common, document, write
from google.cloud.firestore_v1.types import firestore as firestore_types
from google.protobuf import timestamp_pb2

_Write = write.Write.pb()
_FieldTransform = write.DocumentTransform.FieldTransform.pb()
_Document = document.Document.pb()
_Value = document.Value.pb()
_Precondition = common.Precondition.pb()
_CommitRequest = firestore_types.CommitRequest
_CommitResponse = firestore_types.CommitResponse
_REQUEST_TIME = _FieldTransform.ServerValue.REQUEST_TIME
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FieldValue = str | int | datetime | None
TransformOp = Literal["minimum", "increment", "server_time"]


@dataclass(frozen=True, slots=True)
class Transform:
    field: str
    op: TransformOp
    value: int = 0


@dataclass(frozen=True, slots=True)
class DocWrite:
    """One document write: ``fields`` set (merge or create), then ``transforms``."""

    collection: str
    doc_id: str
    fields: Mapping[str, FieldValue]
    transforms: Sequence[Transform]
    create: bool = False


def _value(value: FieldValue) -> Any:
    if value is None:
        return _Value(null_value=0)
    if isinstance(value, bool):  # bool is an int: refuse it rather than store 0/1
        raise TypeError("booleans are not stored")
    if isinstance(value, int):
        return _Value(integer_value=value)
    if isinstance(value, str):
        return _Value(string_value=value)
    # Exact integer seconds and nanos; Timestamp.FromDatetime gets the same
    # through several conversions and costs a few times more per write.
    delta = value - _EPOCH
    return _Value(
        timestamp_value=timestamp_pb2.Timestamp(
            seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000
        )
    )


def _transform(t: Transform) -> Any:
    if t.op == "server_time":
        return _FieldTransform(field_path=t.field, set_to_server_value=_REQUEST_TIME)
    if t.op == "minimum":
        return _FieldTransform(field_path=t.field, minimum=_Value(integer_value=t.value))
    return _FieldTransform(field_path=t.field, increment=_Value(integer_value=t.value))


class Committer:
    """Commits ``DocWrite`` lists atomically through a client's Commit RPC."""

    def __init__(self, client: firestore.Client) -> None:
        self._client = client
        self._documents = f"{client._database_string}/documents"

    def encode(self, doc: DocWrite) -> Any:
        name = f"{self._documents}/{doc.collection}/{doc.doc_id}"
        fields = {k: _value(v) for k, v in doc.fields.items()}
        pb = _Write(
            update=_Document(name=name, fields=fields),
            update_transforms=[_transform(t) for t in doc.transforms],
        )
        if doc.create:
            pb.current_document.CopyFrom(_Precondition(exists=False))
        else:
            pb.update_mask.field_paths.extend(doc.fields)
        return pb

    def commit(self, docs: Sequence[DocWrite], retry: gretry.Retry, timeout: float) -> list[Any]:
        """Commit all writes in one atomic RPC; one raw ``WriteResult`` per write."""
        raw = _CommitRequest.pb()(
            database=self._client._database_string, writes=[self.encode(d) for d in docs]
        )
        response = self._client._firestore_api.commit(
            request=_CommitRequest.wrap(raw),
            metadata=self._client._rpc_metadata,
            retry=retry,
            timeout=timeout,
        )
        return list(_CommitResponse.pb(response).write_results)


def integer_result(write_result: Any, doc: DocWrite, field: str) -> int:
    """The value a transform on ``field`` left, from the commit's answer."""
    index = next(i for i, t in enumerate(doc.transforms) if t.field == field)
    return int(write_result.transform_results[index].integer_value)
