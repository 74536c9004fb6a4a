"""Typed, immutable records: what the edge parses payloads into.

Everything behind the edge trusts these values: ids are valid Firestore
document ids, times are UTC microseconds, and no field holds a phone number,
message text, file URI or coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ReceiptType = Literal["DELIVERED", "READ"]
UserMessageKind = Literal["text", "file", "location", "suggestion_reply", "suggestion_action"]
ContentType = Literal["text", "rich_card", "carousel", "file", "other"]


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """A message the agent sent, as ``phones.agentMessages.create`` returned it."""

    message_id: str
    agent_id: str
    user_key: str
    sent_us: int
    content_type: ContentType
    traffic_type: str | None
    received_us: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """A DELIVERED or READ user event about one agent message."""

    message_id: str
    agent_id: str
    user_key: str
    receipt: ReceiptType
    event_id: str | None
    event_us: int
    received_us: int


@dataclass(frozen=True, slots=True)
class UserMessage:
    """Something the user sent; only its kind and safe metadata are kept."""

    message_id: str
    agent_id: str
    user_key: str
    kind: UserMessageKind
    postback_data: str | None
    mime_type: str | None
    event_us: int
    received_us: int


@dataclass(frozen=True, slots=True)
class UserEvent:
    """A user event without an agent message of its own (IS_TYPING, SUBSCRIBE, …),
    or a server event (TTL_EXPIRATION_REVOKED, …), which names the message."""

    event_id: str
    agent_id: str
    user_key: str
    event_type: str
    message_id: str | None
    event_us: int
    received_us: int


WebhookRecord = Receipt | UserMessage | UserEvent


@dataclass(frozen=True, slots=True)
class Handshake:
    """The RBM console's webhook verification request."""

    client_token: str
    secret: str


@dataclass(frozen=True, slots=True)
class WriteCounts:
    """What a write did: records that changed storage (``stored``), records
    already stored that changed nothing (``duplicate``), and the ids of
    messages another agent owns (``conflicts``; nothing was written for them)."""

    stored: int = 0
    duplicate: int = 0
    conflicts: tuple[str, ...] = ()

    @property
    def conflict(self) -> int:
        return len(self.conflicts)

    def __add__(self, other: WriteCounts) -> WriteCounts:
        return WriteCounts(
            self.stored + other.stored,
            self.duplicate + other.duplicate,
            self.conflicts + other.conflicts,
        )
