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

_Write = write.Write.pb()
_FieldTransform = write.DocumentTransform.FieldTransform.pb()
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
        target.timestamp_value.seconds = delta.days * 86_400 + delta.seconds
        target.timestamp_value.nanos = delta.microseconds * 1000


def _value(value: FieldValue) -> Any:
    out = _Value()
    _set_value(out, value)
    return out


def _add_transform(pb: Any, t: Transform) -> None:
    ft = pb.update_transforms.add()
    ft.field_path = t.field
    if t.op == "server_time":
        ft.set_to_server_value = _REQUEST_TIME
    elif t.op == "minimum":
        ft.minimum.integer_value = t.value
    else:
        ft.increment.integer_value = t.value


class Committer:
    """Commits ``DocWrite`` lists atomically through a client's Commit RPC."""

    def __init__(self, client: firestore.Client) -> None:
        self._client = client
        self._documents = f"{client._database_string}/documents"

    def encode(self, doc: DocWrite) -> Any:
        pb = _Write()
        pb.update.name = f"{self._documents}/{doc.collection}/{doc.doc_id}"
        fields = pb.update.fields
        for key, value in doc.fields.items():
            _set_value(fields[key], value)
        for t in doc.transforms:
            _add_transform(pb, t)
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
