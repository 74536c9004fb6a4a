"""RFC 3339 parsing and the 8-day attribution rule (docs/contract.md §1)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from rbm_analytics.core import timeutil
from rbm_analytics.core.errors import InvalidInput

JAN1_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", JAN1_US),
        ("2026-01-01t00:00:00z", JAN1_US),
        ("2026-01-01 00:00:00Z", JAN1_US),
        ("2026-01-01T09:30:00.123Z", JAN1_US + 34_200_123_000),
        ("2026-01-01T09:30:00.1Z", JAN1_US + 34_200_100_000),
        ("2026-01-01T09:30:00.123456Z", JAN1_US + 34_200_123_456),
        # Nanoseconds: truncated to microseconds, never rounded up past the instant.
        ("2026-01-01T09:30:00.123456789Z", JAN1_US + 34_200_123_456),
        ("2026-01-01T09:30:00.999999999Z", JAN1_US + 34_200_999_999),
        # Offsets: converted to UTC.
        ("2026-01-01T01:00:00+01:00", JAN1_US),
        ("2025-12-31T19:00:00-05:00", JAN1_US),
        ("2026-01-01T05:30:00.5+05:30", JAN1_US + 500_000),
        ("2025-12-31T23:59:59.999999-00:00", JAN1_US - 1),
        ("  2026-01-01T00:00:00Z  ", JAN1_US),
    ],
)
def test_rfc3339(text: str, expected: int) -> None:
    assert timeutil.parse_rfc3339_us(text, "sendTime") == expected


def test_rfc3339_matches_datetime_for_a_range_of_values() -> None:
    for seconds in range(0, 400 * 86_400, 86_399 * 7 + 13):
        dt = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=seconds)
        text = dt.isoformat().replace("+00:00", "Z")
        assert timeutil.parse_rfc3339_us(text, "t") == timeutil.datetime_to_us(dt)
        assert timeutil.us_to_datetime(timeutil.datetime_to_us(dt)) == dt


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01",
        "2026-01-01T00:00Z",
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00.1234567890Z",
        "2026-01-01T00:00:00+0100",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+01:60",
        "2026-02-29T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T23:59:60Z",
        "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",  # full-width digits
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "+12223334444",
        "",
    ],
)
def test_rfc3339_rejects(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        timeutil.parse_rfc3339_us(text, "sendTime")
    # A fixed message naming the field: the value itself is never echoed.
    assert info.value.message in {
        "sendTime is not an RFC 3339 timestamp such as 2026-01-01T09:30:00.123Z",
        "sendTime is not a valid date and time",
        "sendTime has an invalid UTC offset",
        "sendTime is outside the years 2000-2099",
    }


@pytest.mark.parametrize("value", [None, 1767225600, 1.5, ["2026-01-01T00:00:00Z"]])
def test_rfc3339_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidInput, match="sendTime must be an RFC 3339 timestamp string"):
        timeutil.parse_rfc3339_us(value, "sendTime")


def test_format_us_round_trips() -> None:
    us = JAN1_US + 34_200_123_456
    assert timeutil.format_us(us) == "2026-01-01T09:30:00.123456Z"
    assert timeutil.parse_rfc3339_us(timeutil.format_us(us), "t") == us
    assert timeutil.utc_date(us) == date(2026, 1, 1)
    assert timeutil.utc_date(JAN1_US - 1) == date(2025, 12, 31)


def test_naive_datetimes_are_utc() -> None:
    assert timeutil.datetime_to_us(datetime(2026, 1, 1)) == JAN1_US


# --------------------------------------------------------------------------
# The 8-day rule
# --------------------------------------------------------------------------
def test_cutoff_is_d_plus_w_at_midnight_utc() -> None:
    assert timeutil.cutoff(date(2026, 1, 1), 8) == datetime(2026, 1, 9, tzinfo=UTC)
    assert timeutil.cutoff(date(2026, 2, 25), 8) == datetime(2026, 3, 5, tzinfo=UTC)
    assert timeutil.cutoff(date(2028, 2, 25), 8) == datetime(2028, 3, 4, tzinfo=UTC)
    assert timeutil.cutoff(date(2026, 12, 30), 3) == datetime(2027, 1, 2, tzinfo=UTC)


def test_cutoff_boundary() -> None:
    sent = date(2026, 1, 1)
    last_instant = datetime(2026, 1, 8, 23, 59, 59, 999_999, tzinfo=UTC)
    assert timeutil.counts_for(sent, last_instant, 8)
    assert not timeutil.counts_for(sent, datetime(2026, 1, 9, tzinfo=UTC), 8)


@pytest.mark.parametrize(
    ("event", "counts"),
    [
        (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), True),  # the send day itself
        (datetime(2026, 1, 2, 12, 0, tzinfo=UTC), True),  # the contract: read Jan 2 counts
        (datetime(2026, 1, 8, 23, 59, tzinfo=UTC), True),  # read Jan 8 23:59 counts
        (datetime(2026, 1, 9, 0, 0, 1, tzinfo=UTC), False),  # Jan 9: never
        (datetime(2026, 1, 10, 8, 0, tzinfo=UTC), False),  # Jan 10: never
        # An offset timestamp before the cutoff in UTC counts, whatever its local date.
        (datetime(2026, 1, 9, 0, 30, tzinfo=UTC) - timedelta(hours=1), True),
    ],
)
def test_spec_examples(event: datetime, counts: bool) -> None:
    assert timeutil.counts_for(date(2026, 1, 1), event, 8) is counts


def test_cutoff_from_parsed_payload_times() -> None:
    cut = timeutil.datetime_to_us(timeutil.cutoff(date(2026, 1, 1), 8))
    inside = timeutil.parse_rfc3339_us("2026-01-08T23:59:59.999999999Z", "t")
    at = timeutil.parse_rfc3339_us("2026-01-09T01:00:00+01:00", "t")
    assert inside < cut
    assert at == cut


def test_refresh_dates() -> None:
    assert timeutil.refresh_dates(date(2026, 1, 10), 8) == (date(2026, 1, 2), date(2026, 1, 9))
    assert timeutil.refresh_dates(date(2026, 3, 1), 1) == (date(2026, 2, 28), date(2026, 2, 28))


def test_rfc3339_fast_path_agrees_with_the_arithmetic() -> None:
    # Times ending in Z go through datetime.fromisoformat; every other form,
    # and whatever it refuses, through the component arithmetic. Both must
    # give the same microseconds, or the same error, for any input.
    seed = 1202
    print(f"seed={seed}")
    rng = random.Random(seed)
    for _ in range(20_000):
        frac = rng.choice(["", "." + "".join(rng.choices("0123456789", k=rng.randint(1, 9)))])
        text = (
            f"{rng.randint(1999, 2100):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}"
            f"{rng.choice('T t')}{rng.randint(0, 25):02d}:{rng.randint(0, 60):02d}:"
            f"{rng.randint(0, 61):02d}{frac}Z"
        )
        match = timeutil._RFC3339.fullmatch(text)
        assert match is not None
        try:
            expected: object = timeutil._components_us(match, "t")
            if not timeutil._MIN_US <= expected < timeutil._MAX_US:  # type: ignore[operator]
                expected = "t is outside the years 2000-2099"
        except InvalidInput as exc:
            expected = exc.message
        try:
            got: object = timeutil.parse_rfc3339_us(text, "t")
        except InvalidInput as exc:
            got = exc.message
        assert got == expected, text
