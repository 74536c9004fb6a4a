"""RBM payload parsing on every sample in tests/fixtures/rbm and on malformed variants."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import random
import re
from collections.abc import Callable
from typing import Any

import pytest
from rbm_analytics import web
from rbm_analytics.core.errors import InvalidInput
from rbm_analytics.ingest import rbm
from rbm_analytics.ingest.records import AgentMessage, Receipt, UserEvent, UserMessage

from tests.support import FIXTURES, PHONE_KEY, rbm_sample, rbm_sample_bytes

KEY = PHONE_KEY.encode()
RECEIVED = 1_767_400_000_000_000  # 2026-01-03T00:26:40Z
RETENTION = 90
PHONE_A = "+12223334444"
PHONE_B = "+15556667777"
# What a user sent, in the samples: none of it may survive parsing.
SECRETS = (
    "When does my order arrive?",
    "thanks",
    "https://rcs.example.invalid",
    "receipt.jpg",
    "thumb.jpg",
    "37.422",
    "-122.084",
    "Track my order",
    "Show on map",
    "Your order has shipped.",
    "example.invalid/a.pdf",
)
PHONE_PATTERN = re.compile(r"\+?\d{7,15}")


def ukey(phone: str) -> str:
    return hmac.new(KEY, phone.encode(), hashlib.sha256).hexdigest()


def parse(doc: dict[str, Any] | bytes) -> Any:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return rbm.parse_webhook_payload(
        data, phone_key=KEY, received_us=RECEIVED, retention_days=RETENTION
    )


def parse_agent(body: Any) -> list[AgentMessage]:
    return rbm.parse_agent_messages(
        body, phone_key=KEY, received_us=RECEIVED, retention_days=RETENTION
    )


def assert_private(value: object) -> None:
    text = repr(value)
    assert PHONE_A not in text and PHONE_B not in text
    assert PHONE_A[1:] not in text and PHONE_B[1:] not in text
    for secret in SECRETS:
        assert secret not in text, secret


def bad_request(fn: Callable[[], object]) -> str:
    with pytest.raises(InvalidInput) as info:
        fn()
    message = info.value.message
    assert not PHONE_PATTERN.search(message), f"error echoes a number: {message}"
    return message


# --------------------------------------------------------------------------
# Every sample
# --------------------------------------------------------------------------
def test_every_sample_is_covered_here() -> None:
    covered = {
        "agent_message",
        "agent_messages_batch",
        "envelope",
        "handshake",
        "server_event_ttl_revoked",
        "user_event_delivered",
        "user_event_is_typing",
        "user_event_read",
        "user_message_file",
        "user_message_location",
        "user_message_suggestion_action",
        "user_message_suggestion_reply",
        "user_message_text",
        "user_message_text_eventid",
    }
    assert {p.stem for p in (FIXTURES / "rbm").glob("*.json")} == covered


@pytest.mark.parametrize(
    ("sample", "receipt", "event_us"),
    [
        ("user_event_delivered", "DELIVERED", 1_767_259_804_512_000),  # 2026-01-01T09:30:04.512Z
        ("user_event_read", "READ", 1_767_377_565_001_000),  # 2026-01-02T18:12:45.001Z
    ],
)
def test_receipts(sample: str, receipt: str, event_us: int) -> None:
    rec = parse(rbm_sample_bytes(sample))
    assert rec == Receipt(
        message_id="6f1c2b9e-4a3d-4c6e-9b7a-1d2e3f405162",
        agent_id="acme-agent",
        user_key=ukey(PHONE_A),
        receipt=receipt,  # type: ignore[arg-type]
        event_id=rbm_sample(sample)["eventId"],
        event_us=event_us,
        received_us=RECEIVED,
    )
    assert_private(rec)


def test_is_typing_is_a_user_event_without_message() -> None:
    rec = parse(rbm_sample_bytes("user_event_is_typing"))
    assert rec == UserEvent(
        event_id="MxT1yU2iO3pA4sD5fG6hJ7",
        agent_id="acme-agent",
        user_key=ukey(PHONE_A),
        event_type="IS_TYPING",
        message_id=None,
        event_us=1_767_377_582_250_000,  # 2026-01-02T18:13:02.250Z
        received_us=RECEIVED,
    )
    assert_private(rec)


def test_server_event_names_user_by_phone_number_and_keeps_message_id() -> None:
    rec = parse(rbm_sample_bytes("server_event_ttl_revoked"))
    assert rec == UserEvent(
        event_id="SvR1eE2vV3tT4",
        agent_id="acme-agent",
        user_key=ukey(PHONE_A),  # the same key as the user's own events
        event_type="TTL_EXPIRATION_REVOKED",
        message_id="0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d",
        event_us=1_767_398_401_000_000,  # 2026-01-03T00:00:01Z
        received_us=RECEIVED,
    )


@pytest.mark.parametrize(
    ("sample", "kind", "postback", "mime"),
    [
        ("user_message_text", "text", None, None),
        ("user_message_file", "file", None, "image/jpeg"),
        ("user_message_location", "location", None, None),
        ("user_message_suggestion_reply", "suggestion_reply", "track_order", None),
        ("user_message_suggestion_action", "suggestion_action", "open_map", None),
    ],
)
def test_user_messages(sample: str, kind: str, postback: str | None, mime: str | None) -> None:
    doc = rbm_sample(sample)
    rec = parse(rbm_sample_bytes(sample))
    assert isinstance(rec, UserMessage)
    assert (rec.message_id, rec.agent_id, rec.user_key) == (
        doc["messageId"],
        "acme-agent",
        ukey(PHONE_A),
    )
    assert (rec.kind, rec.postback_data, rec.mime_type) == (kind, postback, mime)
    assert rec.event_us != RECEIVED  # the payload's sendTime, not the arrival time
    assert_private(rec)


def test_user_message_with_event_id_and_no_send_time() -> None:
    rec = parse(rbm_sample_bytes("user_message_text_eventid"))
    assert isinstance(rec, UserMessage)
    assert rec.message_id == "MsE3rT4yU5iO6pA7sD8fG9"
    # docs/contract.md §1: without sendTime the event time is the time ingest received it.
    assert rec.event_us == RECEIVED
    assert rec.kind == "text"
    assert_private(rec)


def test_suggestion_without_type_is_an_action() -> None:
    doc = rbm_sample("user_message_suggestion_reply")
    del doc["suggestionResponse"]["type"]
    assert parse(doc).kind == "suggestion_action"
    doc["suggestionResponse"]["type"] = "UNKNOWN"
    assert parse(doc).kind == "suggestion_action"


def test_mime_type_is_lowercased() -> None:
    doc = rbm_sample("user_message_file")
    doc["userFile"]["payload"]["mimeType"] = "Image/JPEG"
    assert parse(doc).mime_type == "image/jpeg"


def test_agent_id_with_rbm_domain_is_accepted() -> None:
    doc = rbm_sample("user_event_read")
    doc["agentId"] = "acme_4fpd1psz_agent@rbm.goog"
    assert parse(doc).agent_id == "acme_4fpd1psz_agent@rbm.goog"


def test_envelope_sample_decodes_to_the_read_event() -> None:
    data = rbm.envelope_data(json.loads((FIXTURES / "rbm" / "envelope.json").read_bytes()))
    rec = parse(data)
    assert isinstance(rec, Receipt)
    assert (rec.receipt, rec.message_id) == ("READ", "6f1c2b9e-4a3d-4c6e-9b7a-1d2e3f405162")


def test_handshake_sample() -> None:
    hs = rbm.parse_handshake(rbm_sample("handshake"))
    assert hs is not None
    assert (hs.client_token, hs.secret) == ("TEST_CLIENT_TOKEN", "1234567890")
    assert rbm.parse_handshake(rbm_sample("user_event_read")) is None
    assert rbm.parse_handshake([1, 2]) is None


def test_agent_message_from_name() -> None:
    (rec,) = parse_agent(rbm_sample("agent_message"))
    assert rec == AgentMessage(
        message_id="6f1c2b9e-4a3d-4c6e-9b7a-1d2e3f405162",
        agent_id="acme-agent",
        user_key=ukey(PHONE_A),
        sent_us=1_767_259_800_123_000,  # 2026-01-01T09:30:00.123Z
        content_type="text",
        traffic_type="TRANSACTION",
        received_us=RECEIVED,
    )
    assert_private(rec)


def test_agent_message_batch_with_both_forms() -> None:
    recs = parse_agent(rbm_sample("agent_messages_batch"))
    assert [(r.message_id, r.user_key, r.content_type, r.traffic_type) for r in recs] == [
        ("0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d", ukey(PHONE_A), "rich_card", None),
        ("1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b", ukey(PHONE_B), "carousel", None),
        ("2c3d4e5f-6071-4829-9bac-1d2e3f4a5b6c", ukey(PHONE_B), "file", None),
    ]
    assert [r.sent_us % 10_000_000 for r in recs] == [0, 1_000_000, 2_000_000]
    assert_private(recs)


def test_explicit_fields_win_over_name() -> None:
    doc = rbm_sample("agent_message")
    doc["messageId"] = "explicit-id"
    doc["phoneNumber"] = PHONE_B
    (rec,) = parse_agent(doc)
    assert (rec.message_id, rec.user_key) == ("explicit-id", ukey(PHONE_B))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"text": "hi"}, "text"),
        ({"richCard": {"standaloneCard": {}}}, "rich_card"),
        ({"richCard": {"carouselCard": {"cardContents": []}}}, "carousel"),
        ({"uploadedRbmFile": {"fileName": "x"}}, "file"),
        ({"contentInfo": {"fileUrl": "https://example.invalid/x"}}, "file"),
        ({"suggestions": []}, "other"),
        (None, "other"),
    ],
)
def test_content_types(content: Any, expected: str) -> None:
    assert rbm.content_type(content) == expected


# --------------------------------------------------------------------------
# Malformed webhook payloads
# --------------------------------------------------------------------------
def _mutated(sample: str, mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(rbm_sample(sample))
    mutate(doc)
    return doc


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            doc = doc[part]
        doc[last] = value

    return mutate


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.pop(name)


MALFORMED_WEBHOOK = [
    ("user_event_read", _drop("agentId"), "agentId"),
    ("user_event_read", _set("agentId", ""), "agentId"),
    ("user_event_read", _set("agentId", "a/b"), "agentId"),
    ("user_event_read", _set("agentId", "__x__"), "agentId"),
    ("user_event_read", _set("agentId", 7), "agentId"),
    ("user_event_read", _drop("messageId"), "messageId"),
    ("user_event_read", _set("messageId", "a" * 300), "messageId"),
    ("user_event_read", _set("messageId", "../x"), "messageId"),
    ("user_event_read", _drop("senderPhoneNumber"), "senderPhoneNumber"),
    ("user_event_read", _set("senderPhoneNumber", "12223334444"), "senderPhoneNumber"),
    ("user_event_read", _set("senderPhoneNumber", "+1 222 333 4444"), "senderPhoneNumber"),
    ("user_event_read", _set("senderPhoneNumber", 12223334444), "senderPhoneNumber"),
    ("user_event_read", _set("sendTime", "yesterday"), "sendTime"),
    ("user_event_read", _set("sendTime", "+12223334444"), "sendTime"),
    ("user_event_read", _set("sendTime", "2026-02-30T00:00:00Z"), "sendTime"),
    ("user_event_read", _set("sendTime", "2026-01-01T00:00:00"), "sendTime"),
    ("user_event_read", _set("sendTime", 1767377565), "sendTime"),
    ("user_event_read", _set("sendTime", "1999-12-31T23:59:59Z"), "sendTime"),
    ("user_event_read", _set("eventType", "read"), "eventType"),
    ("user_event_read", _set("eventType", None), "eventType"),
    ("user_event_read", _set("eventId", "a b"), "eventId"),
    ("user_event_is_typing", _drop("eventId"), "eventId"),
    ("server_event_ttl_revoked", _set("phoneNumber", "+0123"), "phoneNumber"),
    ("user_message_text", _drop("messageId"), "messageId"),
    ("user_message_text", _set("messageId", ""), "messageId"),
    ("user_message_text", _drop("senderPhoneNumber"), "senderPhoneNumber"),
    ("user_message_text", _set("senderPhoneNumber", "+1222333444455556"), "senderPhoneNumber"),
    ("user_message_text", _drop("text"), "text"),
    ("user_message_text", _set("text", {"t": 1}), "text"),
    ("user_message_text", _set("location", {"latitude": 1, "longitude": 2}), "exactly one"),
    ("user_message_text", _set("sendTime", "2026-01-02 18:13"), "sendTime"),
    ("user_message_location", _set("location.latitude", 91), "location.latitude"),
    ("user_message_location", _set("location.longitude", "1.0"), "location.longitude"),
    ("user_message_location", _set("location.latitude", True), "location.latitude"),
    ("user_message_location", _set("location", [1, 2]), "location"),
    ("user_message_file", _set("userFile.payload", None), "userFile.payload"),
    ("user_message_file", _set("userFile.payload.mimeType", "jpeg"), "mimeType"),
    ("user_message_file", _set("userFile", "x"), "userFile"),
    (
        "user_message_suggestion_reply",
        _set("suggestionResponse.type", "TAP"),
        "suggestionResponse.type",
    ),
    (
        "user_message_suggestion_reply",
        _set("suggestionResponse.type", ["REPLY"]),
        "suggestionResponse.type",
    ),
    (
        "user_message_suggestion_reply",
        _set("suggestionResponse.postbackData", "x" * (rbm.MAX_POSTBACK_CHARS + 1)),
        "suggestionResponse.postbackData",
    ),
    (
        "user_message_suggestion_reply",
        _set("suggestionResponse.postbackData", 5),
        "suggestionResponse.postbackData",
    ),
    (
        "user_message_suggestion_reply",
        _set("suggestionResponse.postbackData", "\ud800"),
        "suggestionResponse.postbackData",
    ),
]


@pytest.mark.parametrize(
    ("sample", "mutate", "field"),
    MALFORMED_WEBHOOK,
    ids=[f"{s}-{f}-{i}" for i, (s, _, f) in enumerate(MALFORMED_WEBHOOK)],
)
def test_malformed_webhook_payload(
    sample: str, mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    doc = _mutated(sample, mutate)
    message = bad_request(lambda: parse(doc))
    assert field in message


def test_postback_at_the_limit_is_accepted() -> None:
    doc = _mutated(
        "user_message_suggestion_reply",
        _set("suggestionResponse.postbackData", "é" * rbm.MAX_POSTBACK_CHARS),
    )
    assert parse(doc).postback_data == "é" * rbm.MAX_POSTBACK_CHARS


def test_payload_that_is_neither_event_nor_message() -> None:
    assert "neither" in bad_request(lambda: parse({"agentId": "a", "senderPhoneNumber": PHONE_A}))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"not json", "message.data is not valid JSON"),
        (b"\xff\xfe{", "message.data is not valid JSON"),
        (b"[1, 2]", "message.data must be a JSON object"),
        (b"42", "message.data must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "message.data"),
        (b'{"n": 1' + b"0" * 5000 + b"}", "message.data is not valid JSON"),
    ],
)
def test_decoded_data_that_is_not_an_object(data: bytes, expected: str) -> None:
    assert expected in bad_request(lambda: parse(data))


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"message": {"data": "!!!not base64"}}, "message.data is not valid base64"),
        ({"message": {"data": "YWJ"}}, "message.data is not valid base64"),
        ({"message": {"data": ""}}, "message.data"),
        ({"message": {"data": 5}}, "message.data"),
        ({"message": {}}, "message.data"),
        ({"message": "x"}, "message must be a JSON object"),
        ({}, "message must be a JSON object"),
        ([], "request body must be a JSON object"),
        (3, "request body must be a JSON object"),
    ],
)
def test_malformed_envelope(doc: Any, expected: str) -> None:
    assert expected in bad_request(lambda: rbm.envelope_data(doc))


def test_envelope_accepts_padded_standard_base64() -> None:
    raw = b'{"a": "\xff"}'
    doc = {"message": {"data": base64.b64encode(raw).decode()}}
    assert rbm.envelope_data(doc) == raw


@pytest.mark.parametrize(
    "doc",
    [
        {"clientToken": 5, "secret": "s"},
        {"clientToken": "t"},
        {"clientToken": "t", "secret": "\udc00"},
        {"clientToken": "t" * (rbm.MAX_HANDSHAKE_CHARS + 1), "secret": "s"},
    ],
)
def test_malformed_handshake(doc: dict[str, Any]) -> None:
    message = bad_request(lambda: rbm.parse_handshake(doc))
    assert "clientToken" in message or "secret" in message


def test_json_errors_name_the_body() -> None:
    assert bad_request(lambda: rbm.parse_json(b"{")) == "request body is not valid JSON"
    assert "nested too deeply" in bad_request(lambda: rbm.parse_json(b"[" * 200_000))


# --------------------------------------------------------------------------
# Malformed sent log
# --------------------------------------------------------------------------
def _agent(**changes: Any) -> dict[str, Any]:
    doc = rbm_sample("agent_message")
    for name, value in changes.items():
        if value is _DROP:
            doc.pop(name, None)
        else:
            doc[name] = value
    return doc


_DROP = object()


MALFORMED_AGENT = [
    (_agent(agentId=_DROP), "agentId"),
    (_agent(agentId="bad id"), "agentId"),
    (_agent(name="agentMessages/abc"), "name must look like"),
    (_agent(name="phones/+12223334444/agentMessages/a/b"), "name must look like"),
    (_agent(name=5), "name must look like"),
    (_agent(name="phones/12223334444/agentMessages/abc"), "name"),
    (_agent(name="phones/+12223334444/agentMessages/__x__"), "name (its messageId)"),
    (_agent(name=_DROP), "messageId is missing"),
    (_agent(name=_DROP, messageId="m-1"), "phoneNumber is missing"),
    (_agent(name=_DROP, messageId="m-1", phoneNumber="555-1234"), "phoneNumber"),
    (_agent(name=_DROP, messageId="m 1", phoneNumber=PHONE_A), "messageId"),
    (_agent(sendTime=_DROP), "sendTime"),
    (_agent(sendTime="2026-13-01T00:00:00Z"), "sendTime"),
    (_agent(sendTime="2126-01-01T00:00:00Z"), "sendTime"),
    (_agent(messageTrafficType="transaction"), "messageTrafficType"),
    (_agent(contentMessage="hello"), "contentMessage"),
]


@pytest.mark.parametrize(("doc", "field"), MALFORMED_AGENT, ids=[f for _, f in MALFORMED_AGENT])
def test_malformed_agent_message(doc: dict[str, Any], field: str) -> None:
    assert field in bad_request(lambda: parse_agent(doc))


def test_bad_item_in_batch_names_its_index() -> None:
    batch = rbm_sample("agent_messages_batch")
    batch["agentMessages"][2]["sendTime"] = "soon"
    assert bad_request(lambda: parse_agent(batch)).startswith("agentMessages[2]: sendTime")


def test_batch_limits() -> None:
    item = rbm_sample("agent_message")
    assert len(parse_agent({"agentMessages": [item] * rbm.MAX_BATCH})) == rbm.MAX_BATCH
    too_many = {"agentMessages": [item] * (rbm.MAX_BATCH + 1)}
    assert "501 items; at most 500" in bad_request(lambda: parse_agent(too_many))
    assert "non-empty array" in bad_request(lambda: parse_agent({"agentMessages": []}))
    assert "non-empty array" in bad_request(lambda: parse_agent({"agentMessages": {}}))
    assert "agentMessages[0]: agent message must be a JSON object" in bad_request(
        lambda: parse_agent({"agentMessages": ["x"]})
    )


@pytest.mark.parametrize("body", [[rbm_sample("agent_message")], 12, "x", None])
def test_agent_body_must_be_an_object(body: Any) -> None:
    assert "request body must be a JSON object" in bad_request(lambda: parse_agent(body))


# --------------------------------------------------------------------------
# Agent launch events (partner-level webhooks)
# --------------------------------------------------------------------------
LAUNCH_EVENT = {
    "eventId": "launch-1",
    "agentId": "acme_4fpd1psz_agent@rbm.goog",
    "botDisplayName": "Acme",
    "brandId": "b-1",
    "regionId": "/v1/regions/fi-rcs",
    "oldLaunchState": "LAUNCH_STATE_PENDING",
    "newLaunchState": "LAUNCH_STATE_LAUNCHED",
    "sendTime": "2026-01-01T00:00:00Z",
}


def test_agent_launch_events_are_recognised() -> None:
    data = json.dumps(LAUNCH_EVENT).encode()
    assert rbm.is_agent_launch_event({"message": {"data": "x"}}, data)
    marked = {"message": {"attributes": {"type": "agent_launch_event"}}}
    assert rbm.is_agent_launch_event(marked, b"{}")


@pytest.mark.parametrize(
    "sample",
    ["user_event_read", "user_message_text", "server_event_ttl_revoked", "user_event_is_typing"],
)
def test_rbm_events_are_not_launch_events(sample: str) -> None:
    assert not rbm.is_agent_launch_event({"message": {}}, rbm_sample_bytes(sample))
    # A user message that merely mentions the word is still a user message.
    text = json.dumps(rbm_sample("user_message_text") | {"text": "newLaunchState"}).encode()
    assert not rbm.is_agent_launch_event({"message": {}}, text)
    tricky = json.dumps(LAUNCH_EVENT | {"eventType": "READ"}).encode()
    assert not rbm.is_agent_launch_event([], tricky)
    assert not rbm.is_agent_launch_event({}, b"[newLaunchState")


# --- times that cannot be true ---------------------------------------------------
MINUTE_US = 60_000_000
DAY_US = 86_400_000_000


def _at(us: int) -> str:
    from rbm_analytics.core.timeutil import format_us

    return format_us(us)


@pytest.mark.parametrize(
    ("offset_us", "error"),
    [
        (5 * MINUTE_US, None),  # clock skew: accepted
        (5 * MINUTE_US + 1, "sendTime is more than 5 minutes after the time ingest received it"),
        (400 * DAY_US, "sendTime is more than 5 minutes after"),
        (-RETENTION * DAY_US, None),  # the oldest that is still kept
        (-RETENTION * DAY_US - 1, f"sendTime is older than RETENTION_DAYS ({RETENTION} days)"),
        (-(RECEIVED - 946_684_800_000_000), "sendTime is older than RETENTION_DAYS"),  # 2000-01-01
    ],
)
@pytest.mark.parametrize("sample", ["user_event_read", "user_message_text", "user_event_is_typing"])
def test_webhook_event_times_must_be_possible(
    sample: str, offset_us: int, error: str | None
) -> None:
    doc = rbm_sample(sample) | {"sendTime": _at(RECEIVED + offset_us)}
    if error is None:
        assert parse(doc).event_us == RECEIVED + offset_us
        return
    with pytest.raises(InvalidInput, match=re.escape(error)) as info:
        parse(doc)
    assert web.status_of(info.value) == 400


def test_without_send_time_the_event_time_is_the_arrival() -> None:
    doc = rbm_sample("user_event_read")
    del doc["sendTime"]
    assert parse(doc).event_us == RECEIVED


@pytest.mark.parametrize(
    ("offset_us", "error"),
    [
        (5 * MINUTE_US + 1, "agentMessages[1]: sendTime is more than 5 minutes after"),
        (-RETENTION * DAY_US - 1, "agentMessages[1]: sendTime is older than RETENTION_DAYS"),
    ],
)
def test_sent_record_times_must_be_possible_and_name_the_item(offset_us: int, error: str) -> None:
    batch = rbm_sample("agent_messages_batch")
    batch["agentMessages"][1]["sendTime"] = _at(RECEIVED + offset_us)
    with pytest.raises(InvalidInput, match=re.escape(error)):
        parse_agent(batch)
    single = rbm_sample("agent_message") | {"sendTime": _at(RECEIVED + offset_us)}
    with pytest.raises(InvalidInput, match=re.escape(error.split(": ", 1)[1])):
        parse_agent(single)


# --------------------------------------------------------------------------
# The fast JSON decoder and the standard library's say the same
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b'{"latitude": NaN, "longitude": Infinity}',  # not JSON, but Python's json takes it
        "\ufeff".encode() + b'{"agentId": "a"}',  # a byte-order mark
        '{"agentId": "a"}'.encode("utf-16"),
        '{"agentId": "a"}'.encode("utf-32"),
        b'{"text": "\\ud800"}',  # a lone surrogate, refused later by the field it is in
        b'{"n": 1e400}',
    ],
)
def test_what_the_fast_decoder_refuses_the_standard_library_decides(body: bytes) -> None:
    assert repr(rbm.parse_json(body)) == repr(json.loads(body))


def test_random_documents_decode_as_the_standard_library_decodes_them() -> None:
    seed = 20261202
    print(f"seed={seed}")
    rng = random.Random(seed)

    def value(depth: int) -> Any:
        kind = rng.randrange(8 if depth < 4 else 5)
        if kind == 0:
            return rng.randrange(-(2**63), 2**63)
        if kind == 1:
            return rng.uniform(-1e300, 1e300)
        if kind == 2:
            return "".join(
                chr(rng.choice([rng.randrange(32, 127), rng.randrange(0xA0, 0xD7FF)]))
                for _ in range(rng.randrange(12))
            )
        if kind == 3:
            return rng.choice([True, False, None])
        if kind == 4:
            return rng.randrange(10)
        if kind == 5:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {f"k{rng.randrange(5)}": value(depth + 1) for _ in range(rng.randrange(4))}

    for _ in range(2000):
        body = json.dumps(value(0), ensure_ascii=rng.random() < 0.5).encode()
        assert rbm.parse_json(body) == json.loads(body), body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[" * 1100 + b"]" * 1100, "request body is nested too deeply"),
        (b"[" * 200_000, "request body is nested too deeply"),
        (b'{"a": 1,}', "request body is not valid JSON"),
        (b'"\xff"', "request body is not valid JSON"),
        (b'{"a": 1}\x00', "request body is not valid JSON"),
    ],
)
def test_what_neither_decoder_takes_gets_the_same_errors(body: bytes, expected: str) -> None:
    assert bad_request(lambda: rbm.parse_json(body)) == expected
