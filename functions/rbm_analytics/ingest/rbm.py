"""RBM payload parsing: webhook envelopes and the agent's sent log into records.

Validation happens here, at the edge. Errors name the field that is wrong and
never echo a phone number, text or URI back (they would end up in logs).
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

import orjson

from rbm_analytics.core.errors import InvalidInput
from rbm_analytics.core.ids import ID_RULE, is_valid_id, match_id
from rbm_analytics.core.timeutil import parse_rfc3339_us
from rbm_analytics.ingest.privacy import user_key
from rbm_analytics.ingest.records import (
    AgentMessage,
    ContentType,
    Handshake,
    Receipt,
    UserEvent,
    UserMessage,
    UserMessageKind,
    WebhookRecord,
)

_ENUM = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_MIME = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]{0,126}/[A-Za-z0-9!#$&^_.+\-]{1,127}")
_AGENT_MESSAGE_NAME = re.compile(r"phones/([^/]+)/agentMessages/([^/]+)")
MAX_POSTBACK_CHARS = 2048
MAX_HANDSHAKE_CHARS = 4096
MAX_BATCH = 500
# How far an event may lie in the sender's future: clock skew, not more.
MAX_AHEAD_US = 5 * 60 * 1_000_000
_DAY_US = 86_400 * 1_000_000
RECEIPT_TYPES = ("DELIVERED", "READ")
_SUGGESTION_KINDS: dict[str, UserMessageKind] = {
    "REPLY": "suggestion_reply",
    "ACTION": "suggestion_action",
    "UNKNOWN": "suggestion_action",
}


def parse_json(body: bytes, what: str = "request body") -> Any:
    """Decoded JSON; anything else, including nesting too deep to decode, is a 400.

    orjson decodes what it accepts, strict RFC 8259 JSON in UTF-8, several
    times faster than the standard library: every webhook decodes two
    documents. What it refuses, the standard library decides, so every body
    gets what it always got: NaN, a byte-order mark, UTF-16, lone surrogates
    are still decoded (and refused later by the field they are in), nesting
    too deep still gets its own message. Where both decode, they agree,
    except that an integer past 64 bits comes back as a float; the payloads'
    only numbers are coordinates, checked by range.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput(f"{what} is not valid JSON") from None
    except RecursionError:
        raise InvalidInput(f"{what} is nested too deeply") from None


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if isinstance(value, dict):
        return value
    raise InvalidInput(f"{field} must be a JSON object")


def _id(value: Any, field: str) -> str:
    if isinstance(value, str) and match_id(value):
        return value
    raise InvalidInput(f"{field} is missing or not a valid id ({ID_RULE})")


def _text(value: Any, field: str, limit: int) -> str:
    """A string that can be stored: bounded, and valid Unicode (JSON lets lone
    surrogates through; Firestore and the logs cannot encode them)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string")
    if len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidInput(f"{field} is not valid Unicode") from None
    return value


def _optional_str(value: Any, field: str, limit: int) -> str | None:
    return None if value is None else _text(value, field, limit)


def _enum(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _ENUM.fullmatch(value):
        raise InvalidInput(f"{field} must be an upper-case enum name such as READ")
    return value


# --------------------------------------------------------------------------
# Webhook
# --------------------------------------------------------------------------
def parse_handshake(doc: Any) -> Handshake | None:
    """The verification request, or None when ``doc`` is not one."""
    if not isinstance(doc, dict) or "clientToken" not in doc:
        return None
    token, secret = doc.get("clientToken"), doc.get("secret")
    if not isinstance(token, str) or not isinstance(secret, str):
        raise InvalidInput("clientToken and secret must both be strings")
    return Handshake(
        client_token=_text(token, "clientToken", MAX_HANDSHAKE_CHARS),
        secret=_text(secret, "secret", MAX_HANDSHAKE_CHARS),
    )


def envelope_data(doc: Any) -> bytes:
    """The decoded ``message.data`` bytes of a Pub/Sub-style envelope."""
    # The checks inline, the helper for the error: every webhook passes here.
    envelope = doc if isinstance(doc, dict) else _object(doc, "request body")
    message = envelope.get("message")
    if not isinstance(message, dict):
        message = _object(message, "message")
    data = message.get("data")
    if not isinstance(data, str) or not data:
        raise InvalidInput("message.data is missing or not a base64 string")
    try:
        # Strict: only the base64 alphabet, with correct padding and nothing after it.
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("message.data is not valid base64") from None


def is_agent_launch_event(envelope: Any, data: bytes) -> bool:
    """An AgentLaunchEvent (launch state changes, sent to partner-level webhooks).

    RBM marks them with ``message.attributes.type = agent_launch_event``; the
    payload itself has launch states and no eventType. They carry nothing this
    project counts, and a non-200 would make RBM redeliver them for days.
    """
    message = envelope.get("message") if isinstance(envelope, dict) else None
    attributes = message.get("attributes") if isinstance(message, dict) else None
    if isinstance(attributes, dict) and attributes.get("type") == "agent_launch_event":
        return True
    if b"newLaunchState" not in data:
        return False
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and "newLaunchState" in doc and "eventType" not in doc


def launch_event_agent(data: bytes) -> str | None:
    """The ``agentId`` an agent launch event names, when it names a valid one."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    agent = doc.get("agentId") if isinstance(doc, dict) else None
    return agent if is_valid_id(agent) else None


def parse_webhook_payload(
    data: bytes, *, phone_key: bytes, received_us: int, retention_days: int
) -> WebhookRecord:
    """One decoded RBM payload (UserEvent, UserMessage or server event) as a record.

    Its time must be possible: at most 5 minutes after ``received_us`` and
    not older than ``retention_days`` (a 400 naming ``sendTime`` otherwise).
    """
    doc = parse_json(data, "message.data")
    if not isinstance(doc, dict):
        doc = _object(doc, "message.data")
    agent_id = _id(doc.get("agentId"), "agentId")

    if "eventType" in doc:
        event_type = _enum(doc.get("eventType"), "eventType")
        # Server events name the user as phoneNumber, user events as senderPhoneNumber.
        phone_field = "phoneNumber" if "phoneNumber" in doc else "senderPhoneNumber"
        ukey = user_key(doc.get(phone_field), phone_key, field=phone_field)
        event_us = _event_time(doc, received_us, retention_days)
        if event_type in RECEIPT_TYPES:
            event_id = doc.get("eventId")
            return Receipt(
                message_id=_id(doc.get("messageId"), "messageId"),
                agent_id=agent_id,
                user_key=ukey,
                receipt="DELIVERED" if event_type == "DELIVERED" else "READ",
                event_id=None if event_id is None else _id(event_id, "eventId"),
                event_us=event_us,
                received_us=received_us,
            )
        message_id = doc.get("messageId")
        return UserEvent(
            event_id=_id(doc.get("eventId"), "eventId"),
            agent_id=agent_id,
            user_key=ukey,
            event_type=event_type,
            message_id=None if message_id is None else _id(message_id, "messageId"),
            event_us=event_us,
            received_us=received_us,
        )

    kind, postback, mime = _user_message_content(doc)
    # Some documented examples carry eventId instead of messageId.
    raw_id = doc.get("messageId") if "messageId" in doc else doc.get("eventId")
    return UserMessage(
        message_id=_id(raw_id, "messageId"),
        agent_id=agent_id,
        user_key=user_key(doc.get("senderPhoneNumber"), phone_key),
        kind=kind,
        postback_data=postback,
        mime_type=mime,
        event_us=_event_time(doc, received_us, retention_days),
        received_us=received_us,
    )


def _event_time(doc: Mapping[str, Any], received_us: int, retention_days: int) -> int:
    """docs/contract.md §1: the payload's sendTime when present, else the time it was received."""
    if doc.get("sendTime") is None:
        return received_us
    return _possible_time(doc["sendTime"], "sendTime", received_us, retention_days)


def _possible_time(value: Any, field: str, received_us: int, retention_days: int) -> int:
    """An RFC 3339 time that can be true of a request received at ``received_us``.

    A time in the future is a wrong clock or a forgery; one older than
    RETENTION_DAYS would be stored already expired (and could rewrite
    history that is no longer kept anywhere else).
    """
    us = parse_rfc3339_us(value, field)
    if us > received_us + MAX_AHEAD_US:
        raise InvalidInput(
            f"{field} is more than 5 minutes after the time ingest received it; "
            "check the sender's clock"
        )
    if us < received_us - retention_days * _DAY_US:
        raise InvalidInput(
            f"{field} is older than RETENTION_DAYS ({retention_days} days): "
            "it would be stored already expired"
        )
    return us


def _user_message_content(doc: Mapping[str, Any]) -> tuple[UserMessageKind, str | None, str | None]:
    present = [k for k in ("text", "userFile", "location", "suggestionResponse") if k in doc]
    if len(present) != 1:
        raise InvalidInput(
            "a user message needs exactly one of text, userFile, location, suggestionResponse"
            if present
            else "payload is neither a user event (eventType) nor a user message "
            "(text, userFile, location or suggestionResponse)"
        )
    field = present[0]
    if field == "text":
        if not isinstance(doc["text"], str):
            raise InvalidInput("text must be a string")
        return "text", None, None
    if field == "location":
        loc = _object(doc["location"], "location")
        for axis, bound in (("latitude", 90), ("longitude", 180)):
            value = loc.get(axis)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"location.{axis} must be a number")
            if not -bound <= value <= bound:
                raise InvalidInput(f"location.{axis} is out of range")
        return "location", None, None
    if field == "userFile":
        user_file = _object(doc["userFile"], "userFile")
        payload = _object(user_file.get("payload"), "userFile.payload")
        mime = payload.get("mimeType")
        if not isinstance(mime, str) or not _MIME.fullmatch(mime):
            raise InvalidInput("userFile.payload.mimeType is missing or not a MIME type")
        return "file", None, mime.lower()
    response = _object(doc["suggestionResponse"], "suggestionResponse")
    suggestion_type = response.get("type") or "UNKNOWN"
    kind = _SUGGESTION_KINDS.get(suggestion_type) if isinstance(suggestion_type, str) else None
    if kind is None:
        raise InvalidInput("suggestionResponse.type must be REPLY, ACTION or UNKNOWN")
    postback = _optional_str(
        response.get("postbackData"), "suggestionResponse.postbackData", MAX_POSTBACK_CHARS
    )
    return kind, postback, None


# --------------------------------------------------------------------------
# Agent's sent log
# --------------------------------------------------------------------------
def parse_agent_messages(
    body: Any, *, phone_key: bytes, received_us: int, retention_days: int
) -> list[AgentMessage]:
    """A single AgentMessage object or ``{"agentMessages": [...]}`` (1-500 items).

    One invalid item rejects the whole request, naming its index; an
    impossible ``sendTime`` is invalid (see ``parse_webhook_payload``).
    """
    doc = _object(body, "request body")
    if "agentMessages" in doc:
        items = doc["agentMessages"]
        if not isinstance(items, list) or not items:
            raise InvalidInput("agentMessages must be a non-empty array")
        if len(items) > MAX_BATCH:
            raise InvalidInput(f"agentMessages holds {len(items)} items; at most {MAX_BATCH}")
        out = []
        for i, item in enumerate(items):
            try:
                out.append(_agent_message(item, phone_key, received_us, retention_days))
            except InvalidInput as exc:
                raise InvalidInput(f"agentMessages[{i}]: {exc.message}") from None
        return out
    return [_agent_message(doc, phone_key, received_us, retention_days)]


def _agent_message(
    item: Any, phone_key: bytes, received_us: int, retention_days: int
) -> AgentMessage:
    doc = _object(item, "agent message")
    agent_id = _id(doc.get("agentId"), "agentId")
    phone: Any = doc.get("phoneNumber")
    message_id: Any = doc.get("messageId")
    phone_field, id_field = "phoneNumber", "messageId"
    name = doc.get("name")
    if name is not None:
        m = _AGENT_MESSAGE_NAME.fullmatch(name) if isinstance(name, str) else None
        if m is None:
            raise InvalidInput(
                "name must look like phones/{E.164 number}/agentMessages/{messageId}"
            )
        # Explicit fields win over the ones read from name; errors name the source.
        if phone is None:
            phone, phone_field = m.group(1), "name (its phone number)"
        if message_id is None:
            message_id, id_field = m.group(2), "name (its messageId)"
    if message_id is None:
        raise InvalidInput("messageId is missing (give name or messageId)")
    if phone is None:
        raise InvalidInput("phoneNumber is missing (give name or phoneNumber)")
    traffic = doc.get("messageTrafficType")
    return AgentMessage(
        message_id=_id(message_id, id_field),
        agent_id=agent_id,
        user_key=user_key(phone, phone_key, field=phone_field),
        sent_us=_possible_time(doc.get("sendTime"), "sendTime", received_us, retention_days),
        content_type=content_type(doc.get("contentMessage")),
        traffic_type=None if traffic is None else _enum(traffic, "messageTrafficType"),
        received_us=received_us,
    )


def content_type(content: Any) -> ContentType:
    """The kind of an AgentContentMessage: text, rich_card, carousel, file or other."""
    if content is None:
        return "other"
    msg = _object(content, "contentMessage")
    if "text" in msg:
        return "text"
    rich = msg.get("richCard")
    if isinstance(rich, dict):
        if "carouselCard" in rich:
            return "carousel"
        return "rich_card"
    if "uploadedRbmFile" in msg or "contentInfo" in msg:
        return "file"
    return "other"
