"""The export's query string, parsed into one immutable value (docs/contract.md §4).

Every problem is a 400 naming the parameter. An empty value means that
parameter's default, so an HTML form with a blank field still works.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from rbm_analytics.core.errors import InvalidInput
from rbm_analytics.core.ids import ID_RULE, is_valid_id
from rbm_analytics.core.timeutil import parse_date
from rbm_analytics.export.query import (
    DEFAULT_METRICS,
    KEY_COLUMNS,
    METRICS,
    SCALES,
    STATUS_COLUMN,
)

FORMATS = ("csv", "json")
FLAGS = ("0", "1")
EXPORT_PARAMETERS = ("start", "end", "scale", "metrics", "agent", "format", "status", "total")
RANGE_PARAMETERS = ("start", "end")
DEFAULT_DAYS = 30  # end - 29 days … end
# Three years, a leap day included: 2023-01-01 … 2025-12-31 is allowed.
MAX_RANGE_DAYS = 3 * 365 + 1


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date


@dataclass(frozen=True)
class ExportParams:
    start: date
    end: date
    scale: str = "day"
    metrics: tuple[str, ...] = DEFAULT_METRICS
    agent: str | None = None
    format: str = "csv"
    # status=1: a last column, partial / provisional / final.
    status: bool = False
    # total=1: one more row per period, agent_id "*", every agent together.
    total: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return KEY_COLUMNS + self.metrics + ((STATUS_COLUMN,) if self.status else ())

    @property
    def filename(self) -> str:
        return f"rbm-analytics_{self.start}_{self.end}_{self.scale}.{self.format}"


def _value(query: Mapping[str, str], name: str) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    return raw or None


def _reject_unknown(query: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    # A typo such as ?metric=read would otherwise silently export the defaults.
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"unknown parameter {unknown[0][:40]!r}; the parameters are {', '.join(allowed)}"
        )


def _date(query: Mapping[str, str], name: str) -> date | None:
    raw = _value(query, name)
    return None if raw is None else parse_date(raw, name)


def parse_range(query: Mapping[str, str], today: date) -> DateRange:
    """``start`` and ``end`` with their defaults: the 30 days ending yesterday (UTC)."""
    end = _date(query, "end")
    start = _date(query, "start")
    if end is None:
        end = today - timedelta(days=1)
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise InvalidInput(f"start {start} is after end {end}")
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise InvalidInput(
            f"start {start} to end {end} is {days} days; a range may cover at most "
            f"{MAX_RANGE_DAYS} days (three years)"
        )
    return DateRange(start, end)


def parse_agents_params(query: Mapping[str, str], today: date) -> DateRange:
    """Parameters of ``GET /agents``: only ``start`` and ``end``."""
    _reject_unknown(query, RANGE_PARAMETERS)
    return parse_range(query, today)


def _choice(query: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = _value(query, name)
    if raw is None:
        return default
    if raw not in choices:
        raise InvalidInput(f"unknown {name} {raw[:40]!r}; use one of {', '.join(choices)}")
    return raw


def _metrics(query: Mapping[str, str]) -> tuple[str, ...]:
    raw = _value(query, "metrics")
    if raw is None:
        return DEFAULT_METRICS
    names = [part.strip() for part in raw.split(",")]
    seen: list[str] = []
    for name in names:
        if not name:
            raise InvalidInput(
                "metrics has an empty name; separate metric names with single commas"
            )
        if name in KEY_COLUMNS:
            raise InvalidInput(
                f"metrics: {name} is always the first columns (date, agent_id), not a metric"
            )
        if name not in METRICS:
            raise InvalidInput(
                f"unknown metric {name[:40]!r} in metrics; the metrics are {', '.join(METRICS)}"
            )
        if name in seen:
            raise InvalidInput(f"metrics lists {name} more than once")
        seen.append(name)
    return tuple(seen)


def _agent(query: Mapping[str, str]) -> str | None:
    # The rule ingest applies to every agentId it stores: nothing else can
    # match a row, and nothing that could start a spreadsheet formula passes.
    raw = _value(query, "agent")
    if raw is None:
        return None
    if not is_valid_id(raw):
        raise InvalidInput(f"agent must be a valid agent id ({ID_RULE})")
    return raw


def parse_export_params(query: Mapping[str, str], today: date) -> ExportParams:
    """Parse and validate ``GET /`` parameters; raises InvalidInput (400) naming the parameter."""
    _reject_unknown(query, EXPORT_PARAMETERS)
    scale = _choice(query, "scale", SCALES, "day")
    fmt = _choice(query, "format", FORMATS, "csv")
    metrics = _metrics(query)
    agent = _agent(query)
    status = _choice(query, "status", FLAGS, "0") == "1"
    total = _choice(query, "total", FLAGS, "0") == "1"
    span = parse_range(query, today)
    return ExportParams(span.start, span.end, scale, metrics, agent, fmt, status, total)
