"""Which dates a refresh recomputes: the request body, validated (docs/contract.md §3).

    {}                                  run_date = today (UTC)
    {"run_date": "YYYY-MM-DD"}          R-W … R-1 (W = BACKFILL_DAYS), the 8-day rule
    {"start": "...", "end": "..."}      an explicit backfill of those dates, inclusive
    {"intraday": true}                  today (UTC) so far: a partial row, hourly

No date may be after today (UTC). Today itself is allowed as a backfill
``end``: its numbers are partial until the next morning's run recomputes them.
An intraday run is exactly that: today alone, on its own schedule; the next
morning's run (R-W … R-1) recomputes the day once it has ended.

Recomputing a date reads mirror partitions back to LOOKBACK_DAYS before it (a
user message's previous message). Mirror partitions expire after
MIRROR_RETENTION_DAYS; a plan whose oldest partition read has expired (or
would expire today) is refused: recomputing from a partly expired mirror would
replace correct daily rows with smaller ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from rbm_analytics.core.errors import InvalidInput
from rbm_analytics.core.timeutil import parse_date, refresh_dates
from rbm_analytics.refresh.warehouse import LOOKBACK_DAYS

MAX_RANGE_DAYS = 400
KEYS = ("run_date", "start", "end")
INTRADAY = "intraday"


@dataclass(frozen=True)
class RefreshPlan:
    """The dates to recompute, inclusive; ``run_date`` is set for a morning-style run.

    ``intraday`` marks today's partial run (start = end = today).
    """

    start: date
    end: date
    run_date: date | None = None
    intraday: bool = False

    @property
    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def plan(
    *,
    today: date,
    window_days: int,
    run_date: date | None = None,
    start: date | None = None,
    end: date | None = None,
    mirror_retention_days: int = 0,
) -> RefreshPlan:
    """Validate the dates; raises InvalidInput (400) naming the problem.

    ``mirror_retention_days`` 0 means mirror partitions never expire.
    """
    result = _plan(today, window_days, run_date, start, end)
    check_retention(result, today, mirror_retention_days)
    return result


def check_retention(result: RefreshPlan, today: date, mirror_retention_days: int) -> None:
    """InvalidInput when ``result`` would read mirror partitions that have expired."""
    if not mirror_retention_days:
        return
    oldest_read = result.start - timedelta(days=LOOKBACK_DAYS)
    # A DAY partition P lives until P + retention days, 00:00 UTC: the oldest
    # partition that survives all of today is today - retention + 1.
    oldest_kept = today - timedelta(days=mirror_retention_days - 1)
    if oldest_read < oldest_kept:
        field = "start" if result.run_date is None else "run_date"
        raise InvalidInput(
            f"{field} {result.start if field == 'start' else result.run_date} needs mirror "
            f"partitions from {oldest_read} ({LOOKBACK_DAYS}-day look-back), but "
            f"MIRROR_RETENTION_DAYS={mirror_retention_days} keeps only {oldest_kept} and later"
        )


def _plan(
    today: date,
    window_days: int,
    run_date: date | None,
    start: date | None,
    end: date | None,
) -> RefreshPlan:
    if run_date is not None and (start is not None or end is not None):
        raise InvalidInput("give either run_date or start and end, not both")
    if (start is None) != (end is None):
        raise InvalidInput("start and end must be given together")
    if start is not None and end is not None:
        if start > end:
            raise InvalidInput(f"start {start} is after end {end}")
        if end > today:
            raise InvalidInput(f"end {end} is in the future (today is {today} UTC)")
        days = (end - start).days + 1
        if days > MAX_RANGE_DAYS:
            raise InvalidInput(f"start..end spans {days} days; the limit is {MAX_RANGE_DAYS}")
        return RefreshPlan(start, end)
    run = today if run_date is None else run_date
    if run > today:
        raise InvalidInput(f"run_date {run} is in the future (today is {today} UTC)")
    first, last = refresh_dates(run, window_days)
    return RefreshPlan(first, last, run_date=run)


def plan_from_body(
    body: bytes, *, today: date, window_days: int, mirror_retention_days: int = 0
) -> RefreshPlan:
    """Parse a refresh request body (empty, or a JSON object with KEYS or INTRADAY)."""
    doc: Any = {}
    if body.strip():
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("request body is not valid JSON") from None
        except RecursionError:
            # The parser recurses per nesting level: a deep body is not a plan.
            raise InvalidInput("request body is nested too deeply") from None
    if not isinstance(doc, dict):
        raise InvalidInput("request body must be a JSON object")
    unknown = sorted(set(doc) - {*KEYS, INTRADAY})
    if unknown:
        names = ", ".join(repr(k)[:40] for k in unknown[:5])
        raise InvalidInput(f"unknown field(s) {names}; allowed: {', '.join((*KEYS, INTRADAY))}")
    intraday = doc.get(INTRADAY, False)
    if not isinstance(intraday, bool):
        raise InvalidInput(f"{INTRADAY} must be true or false")
    if intraday:
        if any(k in doc for k in KEYS):
            raise InvalidInput(
                f"{INTRADAY} runs today only; give no run_date, start or end with it"
            )
        return RefreshPlan(today, today, intraday=True)
    dates = {k: parse_date(doc[k], k) for k in KEYS if k in doc}
    return plan(
        today=today, window_days=window_days, mirror_retention_days=mirror_retention_days, **dates
    )
