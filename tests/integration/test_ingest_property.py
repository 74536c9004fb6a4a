"""At-least-once, any order (docs/contract.md §2.4), as a property against the Firestore emulator.

A random set of agent sends, DELIVERED / READ receipts, user messages and user
events is delivered twice into an empty database: once cleanly, one copy each
in causal order; once with random duplicates in random order (receipts before
their sends, duplicates inside one sent-log batch). Both must leave exactly the
same documents, apart from the bookkeeping fields that record arrival rather
than content, and the times must be the earliest of each kind.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from rbm_analytics.core.timeutil import format_us
from rbm_analytics.ingest import store
from rbm_analytics_dev.local import emulators

from tests.integration.ingest_support import all_documents
from tests.support import PROJECT, bearer, signed_webhook

SEED = 20260101
JAN1_US = 1_767_225_600_000_000
DAY_US = 86_400_000_000
AGENTS = ("acme-agent", "acme_4fpd1psz_agent@rbm.goog")
PHONES = ("+12223334444", "+15556667777", "+447700900123")
# Fields that by design record when a copy was written, not what it says.
IGNORED = {"updated_at", "expire_at"}


@dataclass
class Scenario:
    sends: list[dict[str, Any]] = field(default_factory=list)
    webhook_events: list[dict[str, Any]] = field(default_factory=list)
    noisy_order: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    batch_breaks: list[bool] = field(default_factory=list)


times = st.integers(0, 12 * DAY_US).map(lambda us: format_us(JAN1_US + us))
contents = st.sampled_from(
    [
        {"text": "hello"},
        {"richCard": {"standaloneCard": {}}},
        {"richCard": {"carouselCard": {"cardContents": []}}},
        {"uploadedRbmFile": {"fileName": "f"}},
        None,
    ]
)
user_contents = st.sampled_from(
    [
        {"text": "hi there"},
        {"location": {"latitude": 1.5, "longitude": -2.25}},
        {"userFile": {"payload": {"mimeType": "image/png", "fileUri": "https://x.invalid/f"}}},
        {"suggestionResponse": {"postbackData": "yes", "text": "Yes", "type": "REPLY"}},
        {"suggestionResponse": {"postbackData": "map", "type": "ACTION"}},
    ]
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    sc = Scenario()
    n_sent = draw(st.integers(1, 5))
    # Two more ids than sends: receipts for messages whose send never arrives.
    for i in range(n_sent + 2):
        mid = f"m-{i}"
        agent, phone = draw(st.sampled_from(AGENTS)), draw(st.sampled_from(PHONES))
        if i < n_sent:
            send: dict[str, Any] = {"agentId": agent, "sendTime": draw(times)}
            if draw(st.booleans()):
                send["name"] = f"phones/{phone}/agentMessages/{mid}"
            else:
                send |= {"messageId": mid, "phoneNumber": phone}
            content = draw(contents)
            if content is not None:
                send["contentMessage"] = content
            if draw(st.booleans()):
                send["messageTrafficType"] = "TRANSACTION"
            sc.sends.append(send)
        for receipt in ("DELIVERED", "READ"):
            for n in range(draw(st.integers(0, 2))):
                sc.webhook_events.append(
                    {
                        "senderPhoneNumber": phone,
                        "eventType": receipt,
                        "eventId": f"{receipt[0]}-{i}-{n}",
                        "messageId": mid,
                        "sendTime": draw(times),
                        "agentId": agent,
                    }
                )
    for i in range(draw(st.integers(0, 3))):
        sc.webhook_events.append(
            {
                "senderPhoneNumber": draw(st.sampled_from(PHONES)),
                "messageId": f"u-{i}",
                "sendTime": draw(times),
                "agentId": draw(st.sampled_from(AGENTS)),
                **draw(user_contents),
            }
        )
    for i in range(draw(st.integers(0, 3))):
        sc.webhook_events.append(
            {
                "senderPhoneNumber": draw(st.sampled_from(PHONES)),
                "eventType": draw(st.sampled_from(["IS_TYPING", "SUBSCRIBE", "UNSUBSCRIBE"])),
                # The same eventId from two users or agents is two events.
                "eventId": f"e-{draw(st.integers(0, 1))}-{i}",
                "sendTime": draw(times),
                "agentId": draw(st.sampled_from(AGENTS)),
            }
        )

    copies = [("send", s) for s in sc.sends] + [("webhook", e) for e in sc.webhook_events]
    noisy = [c for c in copies for _ in range(draw(st.integers(1, 3)))]
    draw(st.randoms(use_true_random=False)).shuffle(noisy)
    sc.noisy_order = noisy
    sc.batch_breaks = draw(st.lists(st.booleans(), min_size=len(noisy), max_size=len(noisy)))
    return sc


def _post_send_batch(client: Any, sends: list[dict[str, Any]]) -> tuple[int, int]:
    body = sends[0] if len(sends) == 1 else {"agentMessages": sends}
    resp = client.post("/agent-messages", data=json.dumps(body).encode(), headers=bearer())
    assert resp.status_code == 200, resp.get_json()
    counts = resp.get_json()
    return counts["stored"], counts["duplicate"]


def _post_webhook(client: Any, event: dict[str, Any]) -> tuple[int, int]:
    body, headers = signed_webhook(event)
    resp = client.post("/", data=body, headers=headers)
    assert resp.status_code == 200, resp.get_json()
    counts = resp.get_json()
    return counts["stored"], counts["duplicate"]


Request = tuple[str, list[dict[str, Any]]]  # ("send", a batch) or ("webhook", [one event])


def _clean_requests(sc: Scenario) -> list[Request]:
    return [("send", [s]) for s in sc.sends] + [("webhook", [e]) for e in sc.webhook_events]


def _noisy_requests(sc: Scenario) -> list[Request]:
    out: list[Request] = []
    pending: list[dict[str, Any]] = []
    for (kind, item), brk in zip(sc.noisy_order, sc.batch_breaks, strict=True):
        if kind == "send":
            if brk and pending:
                out.append(("send", pending))
                pending = []
            pending.append(item)  # consecutive sends share a batch, duplicates included
            continue
        if pending:
            out.append(("send", pending))
            pending = []
        out.append(("webhook", [item]))
    if pending:
        out.append(("send", pending))
    return out


def _deliver(client: Any, requests: list[Request]) -> tuple[int, int]:
    totals = [0, 0]
    for kind, items in requests:
        if kind == "send":
            counts = _post_send_batch(client, items)
        else:
            counts = _post_webhook(client, items[0])
        for i, n in enumerate(counts):
            totals[i] += n
    return totals[0], totals[1]


def _send_id(send: dict[str, Any]) -> str:
    return str(send.get("messageId") or send["name"].rsplit("/", 1)[1])


def _model_counts(requests: list[Request]) -> tuple[int, int]:
    """What a correct store answers: ``stored`` when a copy changes what is kept (a new
    record, or an earlier time than the one kept), ``duplicate`` when it changes nothing."""
    from rbm_analytics.core.timeutil import parse_rfc3339_us

    kept: dict[Any, int] = {}
    stored = duplicate = 0

    def offer(key: Any, t: int) -> None:
        nonlocal stored, duplicate
        if key not in kept or t < kept[key]:
            kept[key] = t
            stored += 1
        else:
            duplicate += 1

    for kind, items in requests:
        if kind == "send":
            earliest: dict[str, int] = {}
            for s in items:
                t = parse_rfc3339_us(s["sendTime"], "t")
                earliest[_send_id(s)] = min(earliest.get(_send_id(s), t), t)
            duplicate += len(items) - len(earliest)  # the same id twice in one batch
            for mid, t in earliest.items():
                offer((mid, "sent"), t)
            continue
        (ev,) = items
        t = parse_rfc3339_us(ev["sendTime"], "t")
        if ev.get("eventType") in ("DELIVERED", "READ"):
            offer((ev["messageId"], ev["eventType"]), t)
        elif "eventType" in ev:  # immutable: only the first copy is stored
            offer((ev["agentId"], ev["eventId"], ev["senderPhoneNumber"]), 0)
        else:
            offer(("user", ev["messageId"]), 0)
    return stored, duplicate


def _content(docs: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    return {
        name: {
            doc_id: {
                k: v
                for k, v in doc.items()
                if k not in IGNORED and not k.endswith("received_at_us")
            }
            for doc_id, doc in by_id.items()
        }
        for name, by_id in docs.items()
    }


def _expected_times(sc: Scenario) -> dict[str, dict[str, int]]:
    """The agent_messages times a correct store keeps: each kind's earliest."""
    from rbm_analytics.core.timeutil import parse_rfc3339_us

    out: dict[str, dict[str, int]] = {}
    for send in sc.sends:
        mid = send.get("messageId") or send["name"].rsplit("/", 1)[1]
        out.setdefault(mid, {})["sent_at_us"] = parse_rfc3339_us(send["sendTime"], "t")
    for ev in sc.webhook_events:
        if ev.get("eventType") in ("DELIVERED", "READ"):
            name = f"{ev['eventType'].lower()}_at_us"
            t = parse_rfc3339_us(ev["sendTime"], "t")
            doc = out.setdefault(ev["messageId"], {})
            doc[name] = min(doc.get(name, t), t)
    return out


@seed(SEED)
@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sc=scenarios())
def test_duplicates_and_reordering_leave_the_same_documents(
    ingest_client: Any, firestore_host: str, sc: Scenario
) -> None:
    print(f"hypothesis seed {SEED}")
    emulators.wipe_firestore(firestore_host, PROJECT)
    clean_requests = _clean_requests(sc)
    clean_counts = _deliver(ingest_client, clean_requests)
    clean = all_documents()
    emulators.wipe_firestore(firestore_host, PROJECT)
    noisy_requests = _noisy_requests(sc)
    noisy_counts = _deliver(ingest_client, noisy_requests)
    noisy = all_documents()

    assert _content(noisy) == _content(clean)
    # Every copy is answered: stored when it changed what is kept, else duplicate.
    assert sum(noisy_counts) == len(sc.noisy_order)
    assert clean_counts == _model_counts(clean_requests)
    assert noisy_counts == _model_counts(noisy_requests)

    agent_docs = _content(noisy)[store.AGENT_MESSAGES]
    times = {
        mid: {k: v for k, v in doc.items() if k.endswith("_at_us")}
        for mid, doc in agent_docs.items()
    }
    assert times == _expected_times(sc)
    user_messages = [e for e in sc.webhook_events if "eventType" not in e]
    assert len(noisy[store.USER_MESSAGES]) == len(user_messages)
    assert len(noisy[store.USER_EVENTS]) == len(
        {(e["agentId"], e["eventId"], e["senderPhoneNumber"]) for e in sc.webhook_events
         if e.get("eventType") not in (None, "DELIVERED", "READ")}
    )  # fmt: skip


def test_property_helpers_see_differences(ingest_client: Any, firestore_host: str) -> None:
    """The comparison is not vacuous: a later READ that is not the earliest changes nothing,
    while a different content type is a difference."""
    rnd = random.Random(SEED)
    print(f"seed {SEED}")
    send = {
        "agentId": "acme-agent",
        "messageId": f"m-{rnd.randrange(1000)}",
        "phoneNumber": PHONES[0],
        "sendTime": format_us(JAN1_US),
        "contentMessage": {"text": "x"},
    }
    _post_send_batch(ingest_client, [send])
    first = _content(all_documents())
    emulators.wipe_firestore(firestore_host, PROJECT)
    _post_send_batch(ingest_client, [send | {"contentMessage": {"richCard": {}}}])
    assert _content(all_documents()) != first


@pytest.mark.parametrize("repeat", [3])
def test_receipt_before_send_counts_once_send_arrives(ingest_client: Any, repeat: int) -> None:
    mid = "late-send"
    read = {
        "senderPhoneNumber": PHONES[0],
        "eventType": "READ",
        "eventId": "r1",
        "messageId": mid,
        "sendTime": format_us(JAN1_US + 5_000_000),
        "agentId": "acme-agent",
    }
    for _ in range(repeat):
        _post_webhook(ingest_client, read)
    send = {
        "agentId": "acme-agent",
        "name": f"phones/{PHONES[0]}/agentMessages/{mid}",
        "sendTime": format_us(JAN1_US),
    }
    assert _post_send_batch(ingest_client, [send]) == (1, 0)
    doc = all_documents()[store.AGENT_MESSAGES][mid]
    assert (doc["sent_at_us"], doc["read_at_us"]) == (JAN1_US, JAN1_US + 5_000_000)
    assert doc["agent_id"] == "acme-agent"
    # Every further copy is a duplicate and leaves the document exactly as it is.
    assert [_post_webhook(ingest_client, read) for _ in range(repeat)] == [(0, 1)] * repeat
    assert _post_send_batch(ingest_client, [send]) == (0, 1)
    assert all_documents()[store.AGENT_MESSAGES][mid] == doc
