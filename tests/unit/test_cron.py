"""The local scheduler's schedules (cronsim underneath): unix-cron in UTC, as Cloud Scheduler
reads it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rbm_analytics_dev.local.cron import Cron, CronError


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # The default schedule: each morning at 06:00 UTC.
        ("0 6 * * *", "2026-01-01T05:59:30", "2026-01-01T06:00:00"),
        ("0 6 * * *", "2026-01-01T06:00:00", "2026-01-02T06:00:00"),
        ("0 6 * * *", "2026-12-31T07:00:00", "2027-01-01T06:00:00"),
        ("*/15 * * * *", "2026-01-01T10:07:00", "2026-01-01T10:15:00"),
        ("*/15 * * * *", "2026-01-01T10:59:59", "2026-01-01T11:00:00"),
        ("5,35 9-11 * * *", "2026-01-01T11:36:00", "2026-01-02T09:05:00"),
        ("0 0 1 * *", "2026-01-15T00:00:00", "2026-02-01T00:00:00"),
        ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
        # Weekdays by number and by name; 7 is Sunday too.
        ("30 8 * * 1", "2026-01-01T00:00:00", "2026-01-05T08:30:00"),  # Jan 1 2026 is a Thursday
        ("30 8 * * MON-FRI", "2026-01-02T09:00:00", "2026-01-05T08:30:00"),
        ("0 12 * * 7", "2026-01-01T00:00:00", "2026-01-04T12:00:00"),
        ("0 12 * JAN,FEB SUN", "2026-02-28T13:00:00", "2027-01-03T12:00:00"),
        # Both day fields restricted: either one fires (cron's OR rule).
        ("0 0 13 * 5", "2026-01-01T00:00:00", "2026-01-02T00:00:00"),
        ("0 0 13 * 5", "2026-01-10T00:00:00", "2026-01-13T00:00:00"),
        ("0 9-17/4 * * *", "2026-01-01T09:00:00", "2026-01-01T13:00:00"),
        ("10/20 * * * *", "2026-01-01T00:31:00", "2026-01-01T00:50:00"),
    ],
)
def test_next_firing_time(expr: str, after: str, expected: str) -> None:
    cron = Cron.parse(expr)
    nxt = cron.next_after(at(after))
    assert nxt == at(expected)
    assert cron.matches(nxt)


def test_next_after_converts_other_time_zones_to_utc() -> None:
    from datetime import timedelta, timezone

    paris = datetime(2026, 1, 1, 6, 30, tzinfo=timezone(timedelta(hours=1)))  # 05:30 UTC
    assert Cron.parse("0 6 * * *").next_after(paris) == at("2026-01-01T06:00:00")


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 6 * *", "5 fields"),
        ("0 6 * * * *", "5 fields"),
        ("60 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day-of-month"),
        ("* * * 13 *", "month"),
        ("* * * * 8", "day-of-week"),
        ("*/0 * * * *", "minute"),
        ("5-1 * * * *", "minute"),
        ("a * * * *", "minute"),
        ("1,,2 * * * *", "minute"),
    ],
)
def test_invalid_schedules_name_the_problem(expr: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        Cron.parse(expr)


def test_a_schedule_that_never_fires_is_an_error() -> None:
    with pytest.raises(CronError, match="day-of-month"):
        Cron.parse("0 0 30 2 *")


def test_extra_spaces_are_one_schedule() -> None:
    assert Cron.parse(" 0  6 * * * ").expression == "0 6 * * *"
