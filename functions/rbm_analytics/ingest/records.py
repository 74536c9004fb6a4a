"""Typed, immutable records: what the edge parses payloads into.

Everything behind the edge trusts these values: ids are valid Firestore
document ids, times are UTC microseconds, and no field holds a phone number,
message text, file URI or coordinate.

The records made for every event are named tuples: as immutable as frozen
dataclasses, and built in one C call where a frozen dataclass sets each
field through ``object.__setattr__`` (every webhook builds one record and
one document write, ``make bench``: ingest.handler_cpu_per_event).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

ReceiptType = Literal["DELIVERED", "READ"]
UserMessageKind = Literal["text", "file", "location", "suggestion_reply", "suggestion_action"]
ContentType = Literal["text", "rich_card", "carousel", "file", "other"]


class AgentMessage(NamedTuple):
    """A message the agent sent, as ``phones.agentMessages.create`` returned it."""

    message_id: str
    agent_id: str
    user_key: str
    sent_us: int
    content_type: ContentType
    traffic_type: str | None
    received_us: int


class Receipt(NamedTuple):
    """A DELIVERED or READ user event about one agent message."""

    message_id: str
    agent_id: str
    user_key: str
    receipt: ReceiptType
    event_id: str | None
    event_us: int
    received_us: int


class UserMessage(NamedTuple):
    """Something the user sent; only its kind and safe metadata are kept."""

    message_id: str
    agent_id: str
    user_key: str
    kind: UserMessageKind
    postback_data: str | None
    mime_type: str | None
    event_us: int
    received_us: int


class UserEvent(NamedTuple):
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


class Handshake(NamedTuple):
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
