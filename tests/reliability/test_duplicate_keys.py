"""RBM's documented duplicate key is eventId + user: an eventId alone identifies nothing.

The same eventId arrives from two users of one agent and from a second agent,
each copy twice (at-least-once delivery). Each (agent, user) pair is its own
event — stored once, mirrored once, counted once — and a repeat of any of
them is a duplicate. A store that keyed user events by eventId alone would
keep one of the three; one that ignored duplicates would count six.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rbm_analytics.core.timeutil import datetime_to_us, format_us, today_utc

from tests.integration.ingest_support import all_documents
from tests.integration.refresh_support import metrics_by_key, post_refresh, table_rows
from tests.support import AGENT_A, AGENT_B, bearer, signed_webhook

USER_1, USER_2 = "+12223334444", "+15556667777"
SHARED_EVENT = "MxShared0000000000001"


def _post(client: Any, payload: dict[str, Any]) -> dict[str, Any]:
    body, headers = signed_webhook(payload)
    resp = client.post("/", data=body, headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    counts: dict[str, Any] = resp.get_json()
    return counts


def _send(client: Any, agent: str, mid: str, phone: str, at: str) -> None:
    record = {"agentId": agent, "name": f"phones/{phone}/agentMessages/{mid}", "sendTime": at}
    resp = client.post("/agent-messages", json=record, headers=bearer())
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_one_event_id_from_two_users_and_two_agents_is_three_events(
    ingest_client: Any, bq_dataset: str
) -> None:
    day = today_utc() - timedelta(days=1)
    noon_us = datetime_to_us(datetime(day.year, day.month, day.day, 12, tzinfo=UTC))
    at = format_us(noon_us)
    senders = [(AGENT_A, USER_1), (AGENT_A, USER_2), (AGENT_B, USER_1)]
    answers = []
    for _copy in range(2):
        for agent, phone in senders:
            typing = {"senderPhoneNumber": phone, "eventType": "IS_TYPING",
                      "eventId": SHARED_EVENT, "sendTime": at, "agentId": agent}  # fmt: skip
            answers.append(_post(ingest_client, typing))
    assert answers == [{"stored": 1, "duplicate": 0}] * 3 + [{"stored": 0, "duplicate": 1}] * 3

    # Receipts too: one eventId on READs of two agents' messages, each counts.
    for agent, mid in ((AGENT_A, "dk-a"), (AGENT_B, "dk-b")):
        _send(ingest_client, agent, mid, USER_1, at)
        later = format_us(noon_us + 60_000_000)
        read = {"senderPhoneNumber": USER_1, "eventType": "READ", "eventId": SHARED_EVENT,
                "messageId": mid, "sendTime": later, "agentId": agent}  # fmt: skip
        assert _post(ingest_client, read) == {"stored": 1, "duplicate": 0}

    events = all_documents()["user_events"]
    assert len(events) == 3
    assert {(e["agent_id"], e["event_id"]) for e in events.values()} == {
        (AGENT_A, SHARED_EVENT),
        (AGENT_B, SHARED_EVENT),
    }

    post_refresh({"start": day.isoformat(), "end": day.isoformat()})
    mirrored = [r for r in table_rows(bq_dataset, "user_events") if r["event_id"] == SHARED_EVENT]
    assert sorted(r["agent_id"] for r in mirrored) == [AGENT_A, AGENT_A, AGENT_B]
    assert len({(r["agent_id"], r["user_key"]) for r in mirrored}) == 3
    daily = metrics_by_key(bq_dataset)
    key_a, key_b = (day.isoformat(), AGENT_A), (day.isoformat(), AGENT_B)
    assert (daily[key_a]["typing_events"], daily[key_b]["typing_events"]) == (2, 1)
    assert (daily[key_a]["read"], daily[key_b]["read"]) == (1, 1)
