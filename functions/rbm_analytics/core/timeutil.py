"""UTC time: RFC 3339 parsing and the 8-day attribution rule (docs/contract.md §1).

Event times travel as integer microseconds since the Unix epoch (UTC). An
integer lets Firestore keep "the earliest receipt wins" as a blind ``Minimum``
transform, which on the emulator and in production works on numbers only.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

from rbm_analytics.core.errors import InvalidInput

# ASCII digits only: Python's \d would also take other scripts' digits.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(Z|z|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Payload times outside this range are typos or attacks, not RBM events.
_MIN_US = int((datetime(2000, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()) * 1_000_000
_MAX_US = int((datetime(2100, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()) * 1_000_000


def now_us() -> int:
    return time.time_ns() // 1000


def parse_rfc3339_us(value: object, field: str) -> int:
    """Microseconds since the epoch for an RFC 3339 timestamp (nanoseconds truncated)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be an RFC 3339 timestamp string")
    value = value.strip()
    m = _RFC3339.fullmatch(value)
    if not m:
        # The value is not echoed: a misplaced field could hold a phone number.
        raise InvalidInput(f"{field} is not an RFC 3339 timestamp such as 2026-01-01T09:30:00.123Z")
    if m.group(8) == "Z":
        # What RBM sends. The C parser takes it (truncating past microseconds,
        # too) at a fifth of the cost of the arithmetic, which decides the
        # rest: a lower-case t or z, an offset (the C parser would let +01:60
        # through), an impossible date (and raises the error that names it).
        try:
            us = (datetime.fromisoformat(value) - _EPOCH) // _MICROSECOND
        except ValueError:
            us = _components_us(m, field)
    else:
        us = _components_us(m, field)
    if not _MIN_US <= us < _MAX_US:
        raise InvalidInput(f"{field} is outside the years 2000-2099")
    return us


def _components_us(m: re.Match[str], field: str) -> int:
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        dt = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError:
        raise InvalidInput(f"{field} is not a valid date and time") from None
    if zone not in ("Z", "z"):
        if int(zone[1:3]) > 23 or int(zone[4:6]) > 59:
            raise InvalidInput(f"{field} has an invalid UTC offset")
        sign = 1 if zone[0] == "+" else -1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        dt -= sign * offset
    micros = int((frac or "0").ljust(6, "0")[:6])
    return (int((dt - _EPOCH).total_seconds()) * 1_000_000) + micros


# Dates a request may name: the same span as payload times, so no date
# arithmetic near year 1 or 9999 can overflow.
MIN_DATE, MAX_DATE = date(2000, 1, 1), date(2099, 12, 31)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_date(value: object, field: str) -> date:
    """A date ``YYYY-MM-DD`` from MIN_DATE to MAX_DATE; else InvalidInput naming ``field``."""
    expected = f"{field} must be a date as YYYY-MM-DD between {MIN_DATE} and {MAX_DATE}"
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise InvalidInput(expected)
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{field} is not a valid calendar date") from None
    if not MIN_DATE <= parsed <= MAX_DATE:
        raise InvalidInput(expected)
    return parsed


def us_to_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def datetime_to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_us(us: int) -> str:
    """RFC 3339 with microseconds, as BigQuery loads TIMESTAMP values."""
    return us_to_datetime(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_date(us: int) -> date:
    return us_to_datetime(us).date()


def today_utc() -> date:
    return datetime.now(UTC).date()


# ---------------------------------------------------------------------------
# The 8-day rule, in one place.
#
#   sent on D            cutoff = D + W days, 00:00:00 UTC
#   |--- D ---|--- D+1 ---| ... |--- D+W-1 ---|
#   ^ receipts whose event time falls anywhere here count for D
#                                             ^ from here on, never
#
# The SQL in sql/ applies the same bound (TIMESTAMP_ADD(TIMESTAMP(D), INTERVAL
# W DAY)); tests check both against this function.
# ---------------------------------------------------------------------------
def cutoff(sent_date: date, window_days: int) -> datetime:
    """First instant at which a receipt no longer counts for messages sent on ``sent_date``."""
    return datetime(sent_date.year, sent_date.month, sent_date.day, tzinfo=UTC) + timedelta(
        days=window_days
    )


def counts_for(sent_date: date, event: datetime, window_days: int) -> bool:
    """True when an event at ``event`` counts for messages sent on ``sent_date``."""
    return event < cutoff(sent_date, window_days)


def refresh_dates(run_date: date, window_days: int) -> tuple[date, date]:
    """The dates a refresh on ``run_date`` recomputes: ``R-W … R-1`` inclusive."""
    return run_date - timedelta(days=window_days), run_date - timedelta(days=1)
