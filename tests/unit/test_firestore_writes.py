"""Raw protobuf encoding of Firestore writes: the same messages the client library would build."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from unittest import mock

import pytest
from google.cloud import firestore
from google.protobuf import timestamp_pb2
from rbm_analytics.ingest.writes import Committer, DocWrite, Transform, _decode, _value


@pytest.fixture
def committer() -> Committer:
    # No RPC is made: the emulator address only keeps the client off real credentials.
    with mock.patch.dict(os.environ, {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:9"}):
        return Committer(firestore.Client(project="demo-unit"))


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 11, 26, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2000, 2, 29, 12, 0, 0, 1, tzinfo=UTC),
        datetime(2099, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
    ],
)
def test_timestamps_encode_exactly_as_the_library_does(at: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(at)
    assert _value(at).timestamp_value == expected


def test_scalars_and_null() -> None:
    assert _value("x").string_value == "x"
    assert _value(2**62).integer_value == 2**62
    assert _value(None).WhichOneof("value_type") == "null_value"
    with pytest.raises(TypeError):
        _value(True)


def test_merge_write_names_only_its_fields_and_keeps_transform_order(
    committer: Committer,
) -> None:
    doc = DocWrite(
        "agent_messages", "m1", fields={"agent_id": "a", "expire_at": datetime.now(UTC)},
        transforms=(Transform("read_at_us", "minimum", 5), Transform("read_copies", "increment", 1),
                    Transform("updated_at", "server_time")),
    )  # fmt: skip
    pb = committer.encode(doc)
    assert pb.update.name == "projects/demo-unit/databases/(default)/documents/agent_messages/m1"
    assert list(pb.update_mask.field_paths) == ["agent_id", "expire_at"]
    assert not pb.HasField("current_document")
    assert [t.field_path for t in pb.update_transforms] == [
        "read_at_us", "read_copies", "updated_at"
    ]  # fmt: skip
    assert pb.update_transforms[0].minimum.integer_value == 5
    assert pb.update_transforms[1].increment.integer_value == 1
    assert pb.update_transforms[2].set_to_server_value == 1  # REQUEST_TIME


def test_create_write_requires_absence_and_replaces_the_whole_document(
    committer: Committer,
) -> None:
    doc = DocWrite("user_messages", "u1", fields={"kind": "text"}, transforms=(), create=True)
    pb = committer.encode(doc)
    assert pb.HasField("current_document") and pb.current_document.exists is False
    assert not pb.HasField("update_mask")


def test_merge_after_a_read_requires_the_read_update_time(committer: Committer) -> None:
    seen = timestamp_pb2.Timestamp(seconds=1_767_225_600, nanos=123_456_000)
    doc = DocWrite("agent_messages", "m1", fields={"read_at_us": 5}, transforms=(),
                   update_time=seen)  # fmt: skip
    pb = committer.encode(doc)
    assert pb.current_document.update_time == seen
    assert not pb.current_document.HasField("exists")
    assert list(pb.update_mask.field_paths) == ["read_at_us"]


@pytest.mark.parametrize(
    "value", ["acme-agent", "", 0, 2**62, -(2**62), None, datetime(2026, 1, 1, 0, 0, 1, 1, UTC)]
)
def test_reads_decode_what_writes_encode(value: object) -> None:
    assert _decode(_value(value)) == value  # type: ignore[arg-type]


@pytest.mark.parametrize("create", [True, False])
def test_shared_fields_encode_as_the_same_fields_given_one_by_one(
    committer: Committer, create: bool
) -> None:
    at = datetime(2027, 3, 1, tzinfo=UTC)
    shared = (("agent_id", "a"), ("kind", "text"), ("postback_data", None), ("expire_at", at))
    own = {"shard": 7, "user_key": "k" * 64, "event_at_us": 5}
    transforms = (Transform("updated_at", "server_time"),)
    split = committer.encode(
        DocWrite("user_messages", "u1", own, transforms, create=create, shared=shared)
    )
    whole = committer.encode(
        DocWrite("user_messages", "u1", {**dict(shared), **own}, transforms, create=create)
    )
    assert split.update == whole.update  # the same document fields, whatever their order
    assert set(split.update_mask.field_paths) == set(whole.update_mask.field_paths)
    assert split.current_document == whole.current_document
    assert list(split.update_transforms) == list(whole.update_transforms)


def test_writes_sharing_a_template_do_not_see_each_others_fields(committer: Committer) -> None:
    shared = (("agent_id", "a"),)
    transforms = (Transform("updated_at", "server_time"),)
    first = committer.encode(DocWrite("c", "d1", {"x": 1}, transforms, True, shared=shared))
    second = committer.encode(DocWrite("c", "d2", {"y": 2}, transforms, True, shared=shared))
    assert set(first.update.fields) == {"agent_id", "x"}
    assert set(second.update.fields) == {"agent_id", "y"}
    assert DocWrite("c", "d2", {"y": 2}, transforms, shared=shared).all_fields() == {
        "agent_id": "a",
        "y": 2,
    }
