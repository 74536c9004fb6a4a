"""Realistic RBM traffic, planned before it is sent, with its own ground truth.

A plan is a seeded, deterministic list of what happens in the conversations
between agents and users, and of how those events reach ``ingest``:

* agents send campaign messages (text, rich cards, carousels, files) with
  reply and action suggestions, mostly in daytime UTC;
* DELIVERED arrives within seconds for most messages, hours later for phones
  that were off, days later (past the 8-day cutoff) for a few, never for some;
  READ follows minutes to days later;
* users answer in every kind RBM has — a suggestion reply or action carrying
  the suggestion's ``postbackData``, text, a file with its MIME type, a
  location — often after IS_TYPING events; some conversations start with the
  user; the agent answers within seconds (a bot) or minutes (a person);
* the agent backend forwards its sent log in batches of at most 500, every few
  seconds, per agent;
* the webhook delivers late (RBM's retries reorder events) and twice
  (at-least-once delivery), and receipts can arrive before the sent record.

``Truth`` is what a correct refresh must report for the planned events, per
docs/contract.md §1 and §3: counts per UTC date and agent, computed by the
plain-Python reference (``rbm_analytics_dev.reference``, its own 8-day rule,
nothing shared with the production code it checks). Sending lives in
``local/sender.py``.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from rbm_analytics.core.tables import table_defs
from rbm_analytics.core.timeutil import format_us, us_to_datetime

from rbm_analytics_dev import reference

US = 1_000_000
DAY_US = 86_400 * US
MAX_BATCH = 500
SENT_LOG_FLUSH_US = 5 * US  # the agent backend forwards its sent log every 5 s
# IS_TYPING precedes the message it announces by at most this: the only events
# that can come before the start of their conversation.
MAX_TYPING_LEAD_S = 60

AGENT_NAMES = (
    "acme-retail",
    "globex-bank",
    "initech-travel",
    "umbrella-pharmacy",
    "hooli-mobile",
    "wayne-parcels",
    "stark-energy",
    "tyrell-cars",
)

# What a user can send (docs/contract.md §2.1) and the receipts and events the webhook sees.
USER_KINDS = ("text", "file", "location", "suggestion_reply", "suggestion_action")
RECEIPTS = ("DELIVERED", "READ")
EventKind = Literal[
    "sent",
    "DELIVERED",
    "READ",
    "IS_TYPING",
    "text",
    "file",
    "location",
    "suggestion_reply",
    "suggestion_action",
]
Route = Literal["webhook", "agent-messages"]

# daily_metrics columns, per docs/contract.md §3, in table order, from the table's schema:
# the counts (INT64: counts, integer millisecond sums and distinct users, 0
# when nothing happened) and the durations (FLOAT64, NULL without a sample).
_DAILY_FIELDS = table_defs()["daily_metrics"].fields
COUNT_COLUMNS = tuple(f["name"] for f in _DAILY_FIELDS if f["type"] == "INT64")
DURATION_COLUMNS = tuple(f["name"] for f in _DAILY_FIELDS if f["type"] == "FLOAT64")


# ---------------------------------------------------------------------------
# Content: what agents send and what users answer
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Suggestion:
    kind: Literal["reply", "action"]
    text: str
    postback: str
    action: tuple[str, dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.kind == "reply":
            return {"reply": {"text": self.text, "postbackData": self.postback}}
        name, spec = self.action or ("openUrlAction", {"url": "https://example.com"})
        return {"action": {"text": self.text, "postbackData": self.postback, name: spec}}


def _reply(text: str, postback: str) -> Suggestion:
    return Suggestion("reply", text, postback)


def _action(text: str, postback: str, name: str, spec: dict[str, Any]) -> Suggestion:
    return Suggestion("action", text, postback, (name, spec))


@dataclass(frozen=True)
class Template:
    content_type: Literal["text", "rich_card", "carousel", "file"]
    text: str
    suggestions: tuple[Suggestion, ...]
    traffic_type: str
    weight: float

    def content(self) -> dict[str, Any]:
        chips = [s.to_json() for s in self.suggestions]
        if self.content_type == "text":
            msg: dict[str, Any] = {"text": self.text}
            if chips:
                msg["suggestions"] = chips
            return msg
        if self.content_type == "rich_card":
            card = {"title": self.text, "description": "Tap below.", "suggestions": chips}
            return {
                "richCard": {"standaloneCard": {"cardOrientation": "VERTICAL", "cardContent": card}}
            }
        if self.content_type == "carousel":
            cards = [
                {"title": f"{self.text} {i}", "suggestions": chips[i - 1 : i]}
                for i in range(1, max(2, len(chips)) + 1)
            ]
            return {"richCard": {"carouselCard": {"cardWidth": "MEDIUM", "cardContents": cards}}}
        return {"contentInfo": {"fileUrl": "https://example.com/files/statement.pdf"}}


_MAP = ("viewLocationAction", {"query": "nearest store"})
_DIAL = ("dialAction", {"phoneNumber": "+15550100000"})
_URL = ("openUrlAction", {"url": "https://example.com/offers"})
_CAL = (
    "createCalendarEventAction",
    {"startTime": "2026-01-01T10:00:00Z", "endTime": "2026-01-01T10:30:00Z", "title": "Visit"},
)

CAMPAIGNS = (
    Template(
        "text",
        "Your order has shipped.",
        (_reply("Track my order", "track_order"), _action("Show on map", "open_map", *_MAP)),
        "TRANSACTION",
        3.0,
    ),
    Template(
        "text",
        "Your appointment is tomorrow at 10:00.",
        (
            _reply("Confirm", "confirm_appointment"),
            _reply("Reschedule", "reschedule"),
            _action("Add to calendar", "add_calendar", *_CAL),
        ),
        "TRANSACTION",
        2.0,
    ),
    Template(
        "rich_card",
        "Weekend offer: 20% off",
        (_reply("Show offers", "view_offers"), _action("Call us", "call_support", *_DIAL)),
        "PROMOTION",
        2.0,
    ),
    Template(
        "carousel",
        "New arrivals",
        (_reply("More like this", "more_like_this"), _action("Open website", "open_url", *_URL)),
        "PROMOTION",
        1.5,
    ),
    Template(
        "text",
        "How did we do today?",
        (_reply("Great", "csat_good"), _reply("Not great", "csat_bad")),
        "TRANSACTION",
        1.0,
    ),
    Template("file", "Your monthly statement", (), "TRANSACTION", 0.5),
)
RESPONSES = (
    Template(
        "text",
        "Thanks! Anything else?",
        (_reply("No, thanks", "done"), _reply("Talk to a person", "handoff")),
        "CONVERSATION",
        3.0,
    ),
    Template("text", "Here is what I found for you.", (), "CONVERSATION", 2.0),
    Template(
        "rich_card",
        "Your order details",
        (_action("Show on map", "open_map", *_MAP),),
        "CONVERSATION",
        1.0,
    ),
)

# (MIME type, RBM file category, weight): photos dominate what users send.
FILE_TYPES = (
    ("image/jpeg", "IMAGE", 0.55),
    ("image/png", "IMAGE", 0.12),
    ("image/heic", "IMAGE", 0.05),
    ("video/mp4", "VIDEO", 0.1),
    ("audio/aac", "AUDIO", 0.06),
    ("application/pdf", "FILE", 0.12),
)


# ---------------------------------------------------------------------------
# Plan values
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanConfig:
    """Shape of the traffic. Rates are per user, per agent, per day."""

    agents: int = 2
    users: int = 50
    days: float = 3.0
    end_us: int = 0
    seed: int = 1
    campaign_rate: float = 0.5
    inbound_rate: float = 0.08
    duplicate_rate: float = 0.03
    reorder_rate: float = 0.05
    window_days: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.agents <= 1000:
            raise ValueError("agents must be between 1 and 1000")
        if not 1 <= self.users <= 10_000_000:
            raise ValueError("users must be between 1 and 10,000,000")
        if not 0 < self.days <= 400:
            raise ValueError("days must be more than 0 and at most 400")
        for name in ("campaign_rate", "inbound_rate"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"{name} must be between 0 and 100")
        for name in ("duplicate_rate", "reorder_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.window_days < 1:
            raise ValueError("window_days must be at least 1")

    @property
    def start_us(self) -> int:
        return self.end_us - int(self.days * DAY_US)

    def agent_ids(self) -> list[str]:
        return agent_ids(self.agents)

    def phones(self) -> list[str]:
        return [phone_number(i) for i in range(self.users)]


def agent_ids(n: int) -> list[str]:
    names = list(AGENT_NAMES[:n])
    names += [f"agent-{i + 1:03d}" for i in range(len(names), n)]
    return names


def phone_number(index: int) -> str:
    """A fictional +1 555 number per simulated user (E.164)."""
    return f"+1555{index:07d}"


@dataclass(frozen=True)
class Event:
    """One thing that happened, at its own event time (``sendTime``)."""

    at_us: int
    kind: EventKind
    agent_id: str
    phone: str
    message_id: str  # the agent message (sent, receipts) or the user message; eventId otherwise
    payload: dict[str, Any]  # the sent-log record, or the webhook's decoded data
    postback: str | None = None

    @property
    def route(self) -> Route:
        return "agent-messages" if self.kind == "sent" else "webhook"


@dataclass(frozen=True)
class Delivery:
    """One copy of an event on its way to ingest; ``copy`` > 0 is a duplicate."""

    deliver_us: int
    event: Event
    copy: int = 0

    def sort_key(self, seq: int) -> tuple[int, int, str, int]:
        # Sent records of one agent due at one flush tick sort together, so
        # they coalesce into one batch.
        return (self.deliver_us, 0 if self.event.kind == "sent" else 1, self.event.agent_id, seq)


@dataclass(frozen=True)
class PlannedRequest:
    """One HTTP request: a webhook event, or a batch of sent-log records."""

    route: Route
    deliver_us: int
    deliveries: tuple[Delivery, ...]

    def body_json(self) -> Any:
        if self.route == "webhook":
            return self.deliveries[0].event.payload
        return {"agentMessages": [d.event.payload for d in self.deliveries]}


# ---------------------------------------------------------------------------
# Random draws
# ---------------------------------------------------------------------------
def lognormal_s(rng: random.Random, median_s: float, sigma: float) -> float:
    return median_s * math.exp(rng.gauss(0.0, sigma))


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 500:  # Knuth's method underflows; the normal approximation is fine here
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


# Relative activity per UTC hour: quiet nights, busy afternoons.
_HOURLY = (
    0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.0,
    1.0, 1.0, 1.0, 0.95, 0.9, 0.9, 0.85, 0.8, 0.7, 0.55, 0.4, 0.25,
)  # fmt: skip


def _weighted(rng: random.Random, items: Sequence[Any], weights: Sequence[float]) -> Any:
    return rng.choices(items, weights=weights, k=1)[0]


# ---------------------------------------------------------------------------
# Conversations
# ---------------------------------------------------------------------------
class _Conversations:
    """Generates one conversation's events. Lags are in seconds, drawn from
    mixtures chosen to look like production RBM traffic (see module doc)."""

    def __init__(self, rng: random.Random, id_rng: random.Random) -> None:
        self.rng = rng
        self.id_rng = id_rng

    # -- ids ------------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.id_rng.getrandbits(128), version=4))

    def _rbm_id(self, prefix: str) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return prefix + "".join(self.id_rng.choice(alphabet) for _ in range(20))

    # -- events ---------------------------------------------------------------
    def _sent(self, agent: str, phone: str, at: int, template: Template) -> Event:
        mid = self._uuid()
        record = {
            "agentId": agent,
            "name": f"phones/{phone}/agentMessages/{mid}",
            "sendTime": format_us(at),
            "contentMessage": template.content(),
            "messageTrafficType": template.traffic_type,
        }
        return Event(at, "sent", agent, phone, mid, record)

    def _receipt(self, kind: Literal["DELIVERED", "READ"], sent: Event, at: int) -> Event:
        data = {
            "senderPhoneNumber": sent.phone,
            "eventType": kind,
            "eventId": self._rbm_id("Mx"),
            "messageId": sent.message_id,
            "sendTime": format_us(at),
            "agentId": sent.agent_id,
        }
        return Event(at, kind, sent.agent_id, sent.phone, sent.message_id, data)

    def _typing(self, agent: str, phone: str, at: int) -> Event:
        event_id = self._rbm_id("Mt")
        data = {
            "senderPhoneNumber": phone,
            "eventType": "IS_TYPING",
            "eventId": event_id,
            "sendTime": format_us(at),
            "agentId": agent,
        }
        return Event(at, "IS_TYPING", agent, phone, event_id, data)

    def _user_message(
        self, agent: str, phone: str, at: int, kind: EventKind, suggestion: Suggestion | None
    ) -> Event:
        rng = self.rng
        mid = self._rbm_id("Ms")
        data: dict[str, Any] = {
            "senderPhoneNumber": phone,
            "messageId": mid,
            "sendTime": format_us(at),
            "agentId": agent,
        }
        postback = None
        if kind == "text":
            data["text"] = rng.choice(
                ("When does my order arrive?", "thanks", "Can I change the address?", "ok", "Hi")
            )
        elif kind == "file":
            mime, category = _weighted(
                rng, [(m, c) for m, c, _ in FILE_TYPES], [w for _, _, w in FILE_TYPES]
            )
            data["userFile"] = {
                "category": category,
                "payload": {
                    "mimeType": mime,
                    "fileSizeBytes": int(lognormal_s(rng, 300_000, 1.0)),
                    "fileUri": f"https://rcs.example.com/file/{mid}",
                    "fileName": f"upload.{mime.split('/')[1]}",
                },
            }
        elif kind == "location":
            data["location"] = {
                "latitude": round(rng.uniform(-60, 70), 5),
                "longitude": round(rng.uniform(-170, 170), 5),
            }
        else:
            assert suggestion is not None
            postback = suggestion.postback
            data["suggestionResponse"] = {
                "postbackData": suggestion.postback,
                "text": suggestion.text,
                "type": "REPLY" if kind == "suggestion_reply" else "ACTION",
            }
        return Event(at, kind, agent, phone, mid, data, postback)

    # -- flows ----------------------------------------------------------------
    def campaign(self, agent: str, phone: str, at: int) -> list[Event]:
        """An agent-initiated message and everything it leads to."""
        template = _weighted(self.rng, CAMPAIGNS, [t.weight for t in CAMPAIGNS])
        return self._exchange(self._sent(agent, phone, at, template), template, turn=0)

    def inbound(self, agent: str, phone: str, at: int) -> list[Event]:
        """A conversation the user starts."""
        kind = _weighted(self.rng, ("text", "file", "location"), (0.75, 0.15, 0.10))
        return self._user_turn(agent, phone, at, kind, None, turn=0)

    def _exchange(self, sent: Event, template: Template, turn: int) -> list[Event]:
        rng = self.rng
        events = [sent]
        if turn == 0:
            # Phones that are off deliver hours later; some stay off for days
            # (past the 8-day cutoff); some messages never arrive.
            if rng.random() < 0.05:
                return events
            roll = rng.random()
            if roll < 0.86:
                lag = lognormal_s(rng, 3.0, 1.0)
            elif roll < 0.97:
                lag = lognormal_s(rng, 2 * 3600, 1.5)
            else:
                lag = rng.uniform(2 * 86_400, 14 * 86_400)
        else:  # the user is in the conversation: near-instant
            if rng.random() < 0.01:
                return events
            lag = lognormal_s(rng, 0.8, 0.6)
        delivered = sent.at_us + int(lag * US)
        events.append(self._receipt("DELIVERED", sent, delivered))

        p_read = 0.72 if turn == 0 else 0.88
        if rng.random() >= p_read:
            # Read receipts switched off: a few users still answer.
            if rng.random() < 0.04:
                at = delivered + int(lognormal_s(rng, 120, 1.2) * US)
                events += self._answer(sent, template, at, turn)
            return events
        if turn == 0:
            roll = rng.random()
            if roll < 0.65:
                lag = lognormal_s(rng, 120, 1.3)
            elif roll < 0.97:
                lag = lognormal_s(rng, 5 * 3600, 1.2)
            else:
                lag = rng.uniform(3 * 86_400, 12 * 86_400)
        else:
            lag = lognormal_s(rng, 6.0, 1.0)
        read = delivered + int(lag * US)
        events.append(self._receipt("READ", sent, read))

        p_reply = (0.38, 0.4, 0.25, 0.15)[min(turn, 3)]
        if rng.random() < p_reply:
            at = read + int(lognormal_s(rng, 20, 0.9) * US)
            events += self._answer(sent, template, at, turn)
        return events

    def _answer(self, sent: Event, template: Template, at: int, turn: int) -> list[Event]:
        rng = self.rng
        replies = [s for s in template.suggestions if s.kind == "reply"]
        actions = [s for s in template.suggestions if s.kind == "action"]
        kinds: list[EventKind] = ["text", "file", "location"]
        weights = [0.25, 0.08, 0.07]
        if replies:
            kinds.append("suggestion_reply")
            weights.append(0.45)
        if actions:
            kinds.append("suggestion_action")
            weights.append(0.15)
        if not replies and not actions:
            weights = [0.7, 0.15, 0.15]
        kind: EventKind = _weighted(rng, kinds, weights)
        suggestion = None
        if kind == "suggestion_reply":
            suggestion = rng.choice(replies)
        elif kind == "suggestion_action":
            suggestion = rng.choice(actions)
        return self._user_turn(sent.agent_id, sent.phone, at, kind, suggestion, turn)

    def _user_turn(
        self,
        agent: str,
        phone: str,
        at: int,
        kind: EventKind,
        suggestion: Suggestion | None,
        turn: int,
    ) -> list[Event]:
        rng = self.rng
        events: list[Event] = []
        if kind in ("text", "file") and rng.random() < 0.7:
            for _ in range(1 if rng.random() < 0.8 else 2):
                lead = min(MAX_TYPING_LEAD_S, lognormal_s(rng, 5.0, 0.6))
                events.append(self._typing(agent, phone, at - int(lead * US)))
        events.append(self._user_message(agent, phone, at, kind, suggestion))
        if rng.random() < 0.12:  # a second message before the agent answers
            extra = at + int(lognormal_s(rng, 15, 0.8) * US)
            events.append(self._user_message(agent, phone, extra, "text", None))
        if turn < 3 and rng.random() < 0.92:
            if rng.random() < 0.85:  # a bot
                delay = lognormal_s(rng, 1.2, 0.5)
            else:  # handed to a person
                delay = lognormal_s(rng, 240, 1.0)
            template = _weighted(rng, RESPONSES, [t.weight for t in RESPONSES])
            response = self._sent(agent, phone, at + int(delay * US), template)
            events += self._exchange(response, template, turn + 1)
        return events


def _daytime(rng: random.Random, start_us: int, end_us: int) -> int:
    """A time in [start, end), denser in the UTC daytime."""
    t = start_us
    for _ in range(30):
        t = rng.randrange(start_us, max(start_us + 1, end_us))
        if rng.random() < _HOURLY[us_to_datetime(t).hour]:
            return t
    return t


# ---------------------------------------------------------------------------
# Deliveries: how events reach ingest
# ---------------------------------------------------------------------------
def _deliveries(rng: random.Random, event: Event, config: PlanConfig) -> list[Delivery]:
    if event.kind == "sent":
        # Forwarded at the backend's next flush; a few re-posted later.
        tick = (event.at_us // SENT_LOG_FLUSH_US + 1) * SENT_LOG_FLUSH_US
        out = [Delivery(tick, event)]
        if rng.random() < config.duplicate_rate:
            later = tick + int(lognormal_s(rng, 60, 1.0) * US)
            out.append(Delivery(later // SENT_LOG_FLUSH_US * SENT_LOG_FLUSH_US, event, 1))
        return out
    deliver = event.at_us + int(lognormal_s(rng, 0.2, 0.8) * US)
    if rng.random() < config.reorder_rate:  # RBM retried it: arrives after later events
        deliver += int(lognormal_s(rng, 90, 1.5) * US)
    out = [Delivery(deliver, event)]
    if rng.random() < config.duplicate_rate:  # at-least-once: a second copy
        out.append(Delivery(deliver + int(lognormal_s(rng, 20, 1.2) * US), event, 1))
    return out


def coalesce(deliveries: Iterable[Delivery]) -> Iterator[PlannedRequest]:
    """Requests in delivery order; consecutive sent records of one agent and
    flush tick share a batch of at most MAX_BATCH."""
    batch: list[Delivery] = []
    for d in deliveries:
        if batch and (
            d.event.kind != "sent"
            or d.deliver_us != batch[0].deliver_us
            or d.event.agent_id != batch[0].event.agent_id
            or len(batch) >= MAX_BATCH
        ):
            yield PlannedRequest("agent-messages", batch[0].deliver_us, tuple(batch))
            batch = []
        if d.event.kind == "sent":
            batch.append(d)
        else:
            yield PlannedRequest("webhook", d.deliver_us, (d,))
    if batch:
        yield PlannedRequest("agent-messages", batch[0].deliver_us, tuple(batch))


# ---------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TrafficPlan:
    """Everything a backfill simulation sends, in order, and what it means."""

    config: PlanConfig
    events: tuple[Event, ...]  # every event that happened by end_us, in time order
    requests: tuple[PlannedRequest, ...]  # in delivery order

    def truth(self) -> Truth:
        return compute_truth(self.events, self.config.window_days)

    def counts(self) -> dict[str, int]:
        """Events by kind, and the duplicate copies planned on top of them."""
        counts: Counter[str] = Counter(e.kind for e in self.events)
        out = {k: counts.get(k, 0) for k in ("sent", *RECEIPTS, "IS_TYPING", *USER_KINDS)}
        out["duplicates"] = sum(1 for r in self.requests for d in r.deliveries if d.copy)
        out["requests"] = len(self.requests)
        return out


def _seeds(config: PlanConfig) -> tuple[random.Random, random.Random]:
    # Ids depend on the end time too: two runs with one seed at different
    # times send different messages rather than colliding with the first
    # run's message ids.
    return random.Random(config.seed), random.Random(f"{config.seed}/{config.end_us}")


def plan_backfill(config: PlanConfig) -> TrafficPlan:
    """The traffic of ``config.days`` days up to ``config.end_us``; events
    after the end have not happened yet and are left out."""
    rng, id_rng = _seeds(config)
    conv = _Conversations(rng, id_rng)
    start, end = config.start_us, config.end_us
    events: list[Event] = []
    for agent in config.agent_ids():
        for phone in config.phones():
            for _ in range(poisson(rng, config.campaign_rate * config.days)):
                events += conv.campaign(agent, phone, _daytime(rng, start, end))
            for _ in range(poisson(rng, config.inbound_rate * config.days)):
                events += conv.inbound(agent, phone, _daytime(rng, start, end))
    events = sorted((e for e in events if e.at_us <= end), key=lambda e: e.at_us)
    deliveries = [d for e in events for d in _deliveries(rng, e, config)]
    keyed = sorted((d.sort_key(i), d) for i, d in enumerate(deliveries))
    requests = tuple(coalesce(d for _, d in keyed))
    return TrafficPlan(config, tuple(events), requests)


def mean_requests_per_conversation(config: PlanConfig, samples: int = 400) -> float:
    """Estimated from a throwaway sample, to turn a request rate into a
    conversation rate for live traffic."""
    rng = random.Random(f"calibrate/{config.seed}")
    conv = _Conversations(rng, random.Random(0))
    total_rate = config.campaign_rate + config.inbound_rate or 1.0
    n = 0.0
    for _ in range(samples):
        events = (
            conv.campaign("a", "+15550000000", 0)
            if rng.random() * total_rate < config.campaign_rate or config.inbound_rate == 0
            else conv.inbound("a", "+15550000000", 0)
        )
        webhook = sum(1 for e in events if e.kind != "sent")
        sent = len(events) - webhook
        # Sent records share batches: a small fraction of a request each.
        n += webhook * (1 + config.duplicate_rate) + sent * 0.2
    return max(1.0, n / samples)


@dataclass(frozen=True)
class LivePlan:
    """Traffic from ``start_us`` on at about ``rate`` requests per second, until
    ``stop_us`` if given; ``requests()`` yields requests in order, with delivery
    times in the future that the sender waits for."""

    config: PlanConfig
    start_us: int
    rate: float
    stop_us: int | None = None

    def requests(self) -> Iterator[PlannedRequest]:
        return coalesce(self._deliveries())

    def _deliveries(self) -> Iterator[Delivery]:
        rng, id_rng = _seeds(self.config)
        conv = _Conversations(rng, id_rng)
        agents, users = self.config.agent_ids(), self.config.users
        conv_rate = self.rate / mean_requests_per_conversation(self.config)
        total = self.config.campaign_rate + self.config.inbound_rate or 1.0
        stop = self.stop_us
        margin = (MAX_TYPING_LEAD_S + 1) * US
        next_conv = self.start_us
        heap: list[tuple[tuple[int, int, str, int], Delivery]] = []
        seq = 0
        while True:
            # A conversation's deliveries come after its start (less a typing
            # lead): every one that could precede the heap's top has been
            # generated once next_conv is that far past it.
            while (not heap or heap[0][1].deliver_us > next_conv - margin) and (
                stop is None or next_conv <= stop
            ):
                agent, phone = rng.choice(agents), phone_number(rng.randrange(users))
                if rng.random() * total < self.config.campaign_rate:
                    new = conv.campaign(agent, phone, next_conv)
                else:
                    new = conv.inbound(agent, phone, next_conv)
                for event in new:
                    if stop is not None and event.at_us > stop:
                        continue
                    for d in _deliveries(rng, event, self.config):
                        heapq.heappush(heap, (d.sort_key(seq), d))
                        seq += 1
                next_conv += max(1, int(rng.expovariate(conv_rate) * US))
            if not heap:
                return
            _, d = heapq.heappop(heap)
            if stop is not None and d.deliver_us > stop:
                return
            yield d


def truth_of(requests: Iterable[PlannedRequest], window_days: int) -> Truth:
    """Ground truth of the events that ``requests`` carried (first copies)."""
    events = [d.event for r in requests for d in r.deliveries if d.copy == 0]
    return compute_truth(sorted(events, key=lambda e: e.at_us), window_days)


# ---------------------------------------------------------------------------
# Ground truth
# ---------------------------------------------------------------------------
@dataclass
class Truth:
    """What ``daily_metrics`` and ``daily_postbacks`` must hold for the events."""

    window_days: int
    daily: dict[tuple[date, str], dict[str, Any]]
    postbacks: dict[tuple[date, str, str, str], int]

    def row(self, day: date, agent: str) -> dict[str, Any]:
        return self.daily.get((day, agent)) or reference.empty_row()

    def dates(self) -> list[date]:
        return sorted({d for d, _ in self.daily})

    def agents(self) -> list[str]:
        return sorted({a for _, a in self.daily})

    def to_json(self) -> dict[str, Any]:
        return {
            "window_days": self.window_days,
            "daily_metrics": [
                {"date": d.isoformat(), "agent_id": a, **row}
                for (d, a), row in sorted(self.daily.items())
            ],
            "daily_postbacks": [
                {"date": d.isoformat(), "agent_id": a, "postback_data": p, "kind": k, "count": n}
                for (d, a, p, k), n in sorted(self.postbacks.items())
            ],
        }

    def dump(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_json(), fh, indent=1)
            fh.write("\n")


def compute_truth(events: Sequence[Event], window_days: int) -> Truth:
    """Daily metrics for ``events`` (each counted once), by the plain-Python reference.

    Only the translation happens here: each sent message with its earliest
    DELIVERED and READ, the user messages and the IS_TYPING events. The rules
    (the 8-day cutoff, waits, durations, percentiles) are the reference's,
    which shares no code with the production package.
    """
    sent: dict[str, Event] = {}
    first: dict[tuple[str, str], int] = {}  # (receipt kind, message id) -> earliest time
    user_msgs: list[reference.UserMsg] = []
    typing: list[reference.Typing] = []
    for e in events:
        if e.kind == "sent":
            sent.setdefault(e.message_id, e)
        elif e.kind in RECEIPTS:
            key = (e.kind, e.message_id)
            first[key] = min(first.get(key, e.at_us), e.at_us)
        elif e.kind == "IS_TYPING":
            typing.append(reference.Typing(e.agent_id, e.phone, _at(e.at_us)))
        else:
            user_msgs.append(reference.UserMsg(e.message_id, e.agent_id, e.phone, _at(e.at_us),
                                               e.kind, e.postback))  # fmt: skip

    def receipt(kind: str, mid: str) -> datetime | None:
        at = first.get((kind, mid))
        return None if at is None else _at(at)

    agent_msgs = [
        reference.AgentMsg(mid, e.agent_id, e.phone, _at(e.at_us), receipt("DELIVERED", mid),
                           receipt("READ", mid))
        for mid, e in sent.items()
    ]  # fmt: skip
    want = reference.expected(agent_msgs, user_msgs, typing, window=window_days)
    postbacks = {k: n for k, n in want.postbacks.items() if k[2] is not None}
    return Truth(window_days, want.metrics, postbacks)  # type: ignore[arg-type]


def _at(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
