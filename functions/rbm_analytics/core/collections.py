"""The Firestore collections ``ingest`` writes and ``refresh`` reads."""

from __future__ import annotations

AGENT_MESSAGES = "agent_messages"
USER_MESSAGES = "user_messages"
USER_EVENTS = "user_events"
COLLECTIONS = (AGENT_MESSAGES, USER_MESSAGES, USER_EVENTS)
