"""The unix-cron schedules Cloud Scheduler accepts, evaluated in UTC.

Five fields — minute, hour, day of month, month, day of week — each ``*``, a
number, a range ``a-b``, a step ``*/n`` or ``a-b/n`` or ``a/n``, or a comma
list of those; months and weekdays also by name (``JAN``, ``MON``); weekday 0
and 7 are both Sunday. As in cron (and Cloud Scheduler), when both the day of
month and the day of week are restricted, a day matching either one fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, lowest, highest, names); names map to lowest + their index.
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
# Far enough for every satisfiable schedule (Feb 29 on a given weekday
# recurs within 28 years).
_HORIZON = timedelta(days=366 * 29)


class CronError(ValueError):
    """A schedule that is not valid unix-cron syntax, or never fires."""


def _value(token: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    upper = token.upper()
    if upper in names:
        return low + names.index(upper)
    if not token.isdigit():
        raise CronError(f"{name} field: {token!r} is not a number")
    value = int(token)
    if not low <= value <= high:
        raise CronError(f"{name} field: {value} is outside {low}-{high}")
    return value


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name} field: empty list item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if first > last:
                raise CronError(f"{name} field: range {base!r} runs backwards")
        else:
            first = _value(base, name, low, high, names)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed schedule; ``next_after`` gives its next firing time in UTC."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day-of-month field is "*"
    any_weekday: bool  # day-of-week field is "*"

    @classmethod
    def parse(cls, expression: str) -> Cron:
        parts = expression.split()
        if len(parts) != 5:
            raise CronError(
                f"a schedule has 5 fields (minute hour day-of-month month day-of-week), "
                f"got {len(parts)} in {expression!r}"
            )
        sets = [_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(
            expression=" ".join(parts),
            minutes=sets[0],
            hours=sets[1],
            days=sets[2],
            months=sets[3],
            weekdays=weekdays,
            any_day=parts[2].startswith("*"),
            any_weekday=parts[4].startswith("*"),
        )

    def _day_matches(self, dt: datetime) -> bool:
        dom = dt.day in self.days
        dow = (dt.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def matches(self, dt: datetime) -> bool:
        dt = dt.astimezone(UTC)
        return (
            dt.minute in self.minutes
            and dt.hour in self.hours
            and dt.month in self.months
            and self._day_matches(dt)
        )

    def next_after(self, after: datetime) -> datetime:
        """The first firing time strictly after ``after`` (UTC, whole minutes)."""
        after = after.astimezone(UTC)
        t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = after + _HORIZON
        while t <= limit:
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        raise CronError(f"schedule {self.expression!r} never fires")
