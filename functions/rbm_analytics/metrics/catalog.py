"""Every metric, defined once: one entry per ``daily_metrics`` column, plus the two rates.

An entry says what the metric is (name, label, one-line definition, BigQuery
type) and how it combines over a week or a month. Everything else that lists
metrics follows from here:

* ``make generate`` writes the ``daily_metrics`` schema (``infra/schemas/`` and
  its copy), the column lists of ``sql/replace_daily.sql`` (between its
  ``generated`` markers), the Analytics page's checkboxes and the README's
  metrics table; ``make lint`` fails when any of them is stale;
* the export reads ``METRICS`` below (names, and how each one combines);
* the tests build ``daily_metrics`` rows from it.

What a metric *means* for one day stays hand-written SQL: the CTE in
``sql/replace_daily.sql`` that computes it, next to its definition. Adding a
metric is described in CONTRIBUTING.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Combine(Enum):
    """How a metric's daily values combine over a week or a month."""

    SUM = "sum"  # summed; 0 when nothing happened
    WEIGHTED_AVERAGE = "weighted average"  # Σ sums / Σ counts of the period's days
    PERIOD_PERCENTILE = "period percentile"  # nearest rank over the period's own samples
    RATE = "rate"  # a ratio of two period sums, 4 decimals, NULL when the divisor is 0
    LATEST = "latest"  # the newest of the period's values
    # Distinct users over the period's own days, from the mirror (a user
    # active on several days counts once: daily values do not add up).
    PERIOD_DISTINCT = "period distinct"


class Unit(Enum):
    """What the Analytics page charts a metric as (None: not on the page)."""

    COUNT = "count"
    RATE = "rate"
    DURATION = "duration"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    definition: str
    type: str  # BigQuery type: INT64, FLOAT64 or TIMESTAMP
    combine: Combine
    unit: Unit | None = None
    # A daily_metrics column (False: computed by the export from other columns).
    stored: bool = True
    # REQUIRED in the schema. Only columns the first release created are:
    # BigQuery can add NULLABLE columns to a table with rows, never REQUIRED ones.
    required: bool = False
    # WEIGHTED_AVERAGE: the count of samples and the integer sum of milliseconds.
    weight: str | None = None
    sum_ms: str | None = None
    # PERIOD_PERCENTILE: the response_samples.metric value and the percentile.
    sample: str | None = None
    percentile: int | None = None
    # RATE: numerator and denominator columns.
    ratio: tuple[str, str] | None = None

    @property
    def zero_when_empty(self) -> bool:
        """Counts and sums are 0, never NULL, on a day or period without data."""
        return self.combine in (Combine.SUM, Combine.PERIOD_DISTINCT)


def _count(name: str, label: str, definition: str, *, required: bool = True) -> Metric:
    return Metric(name, label, definition, "INT64", Combine.SUM, Unit.COUNT, required=required)


def _average(name: str, label: str, definition: str, *, weight: str, sum_ms: str) -> Metric:
    return Metric(name, label, definition, "FLOAT64", Combine.WEIGHTED_AVERAGE, Unit.DURATION,
                  weight=weight, sum_ms=sum_ms)  # fmt: skip


def _percentile(name: str, label: str, definition: str, *, sample: str, p: int) -> Metric:
    return Metric(name, label, definition, "FLOAT64", Combine.PERIOD_PERCENTILE, Unit.DURATION,
                  sample=sample, percentile=p)  # fmt: skip


def _rate(name: str, label: str, definition: str, *, ratio: tuple[str, str]) -> Metric:
    return Metric(name, label, definition, "FLOAT64", Combine.RATE, Unit.RATE, stored=False,
                  ratio=ratio)  # fmt: skip


def _distinct(name: str, label: str, definition: str) -> Metric:
    return Metric(name, label, definition, "INT64", Combine.PERIOD_DISTINCT, Unit.COUNT)


def _sum_ms(name: str, label: str, definition: str) -> Metric:
    return Metric(name, label, definition, "INT64", Combine.SUM)


# In daily_metrics column order (new columns are appended: BigQuery adds
# columns at the end), with the rates where the page shows them.
CATALOG: tuple[Metric, ...] = (
    _count("sent", "Sent", "agent messages sent on the date"),
    _count("delivered", "Delivered",
           "of those, DELIVERED before date + BACKFILL_DAYS, 00:00 UTC"),
    _count("read", "Read", "of those, READ before date + BACKFILL_DAYS, 00:00 UTC"),
    _rate("delivery_rate", "Delivery rate", "delivered / sent (empty when sent = 0)",
          ratio=("delivered", "sent")),
    _rate("read_rate", "Read rate", "read / sent (empty when sent = 0)", ratio=("read", "sent")),
    _count("typing_events", "Typing events", "IS_TYPING events on the date"),
    _count("user_messages", "User messages", "user messages on the date"),
    _count("user_text", "User text messages", "user text messages on the date"),
    _count("user_files", "User files", "user file messages on the date"),
    _count("user_locations", "User locations", "user location messages on the date"),
    _count("suggestion_replies", "Suggested-reply taps", "suggested-reply taps on the date"),
    _count("suggestion_actions", "Suggested-action taps", "suggested-action taps on the date"),
    _count("reads_with_reply", "Reads with a reply",
           "messages counted in read whose READ is followed by a user message in the same "
           "conversation before the cutoff"),
    _average("read_to_reply_avg_s", "Read to reply, mean",
             "mean seconds from the READ to that first user message",
             weight="reads_with_reply", sum_ms="read_to_reply_sum_ms"),
    _percentile("read_to_reply_p50_s", "Read to reply, median",
                "median (nearest rank) seconds from the READ to that first user message",
                sample="read_to_reply", p=50),
    _count("agent_responses", "Agent responses",
           "user messages on the date that opened a wait the agent answered before the cutoff"),
    _average("agent_response_avg_s", "Agent response, mean",
             "mean seconds from the wait-opening user message to the agent's answer",
             weight="agent_responses", sum_ms="agent_response_sum_ms"),
    _percentile("agent_response_p50_s", "Agent response, median",
                "median (nearest rank) seconds the agent took to answer",
                sample="agent_response", p=50),
    _percentile("agent_response_p90_s", "Agent response, 90th percentile",
                "90th percentile (nearest rank) seconds the agent took to answer",
                sample="agent_response", p=90),
    Metric("refreshed_at", "Refreshed at", "when this row was last written", "TIMESTAMP",
           Combine.LATEST, required=True),
    _sum_ms("read_to_reply_sum_ms", "Read to reply, total ms",
            "total whole milliseconds from READ to reply (0 without a sample)"),
    _sum_ms("agent_response_sum_ms", "Agent response, total ms",
            "total whole milliseconds the agent took to answer (0 without a sample)"),
    _distinct("recipients", "Recipients",
              "distinct users sent an agent message on the date (user_key of agent_messages)"),
    _distinct("responders", "Responders",
              "distinct users who sent a user message on the date (user_key of user_messages)"),
)  # fmt: skip

METRICS: dict[str, Metric] = {m.name: m for m in CATALOG}
COLUMNS: tuple[Metric, ...] = tuple(m for m in CATALOG if m.stored)
DEFAULT_METRICS = ("sent", "delivered", "read")

# The key columns every daily_metrics row starts with.
KEYS: tuple[dict[str, str], ...] = (
    {"name": "date", "type": "DATE", "mode": "REQUIRED",
     "description": "UTC date: send date for sent/delivered/read and replies to reads, "
                    "event date otherwise"},
    {"name": "agent_id", "type": "STRING", "mode": "REQUIRED", "description": "RBM agent id"},
)  # fmt: skip


def schema() -> list[dict[str, str]]:
    """The daily_metrics table in BigQuery's JSON schema format."""
    return [
        *KEYS,
        *(
            {"name": m.name, "type": m.type, "mode": "REQUIRED" if m.required else "NULLABLE",
             "description": m.definition}
            for m in COLUMNS
        ),
    ]  # fmt: skip
