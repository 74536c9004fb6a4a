"""Which dates a refresh recomputes, and every 400 / 405 of the refresh function."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from rbm_analytics.core.errors import InvalidInput
from rbm_analytics.core.timeutil import today_utc
from rbm_analytics.refresh.plan import plan, plan_from_body

from tests.support import REPO_ROOT

TODAY = date(2026, 1, 20)


def _plan(body: dict[str, Any]) -> Any:
    return plan_from_body(json.dumps(body).encode(), today=TODAY, window_days=8)


def test_run_date_recomputes_the_eight_days_before_it() -> None:
    p = _plan({"run_date": "2026-01-10"})
    assert p.dates == [date(2026, 1, d) for d in range(2, 10)]
    assert p.run_date == date(2026, 1, 10)


def test_empty_body_is_todays_run() -> None:
    p = plan_from_body(b"", today=TODAY, window_days=8)
    assert (p.start, p.end, p.run_date) == (date(2026, 1, 12), date(2026, 1, 19), TODAY)


def test_backfill_window_follows_the_setting() -> None:
    p = plan_from_body(b"{}", today=TODAY, window_days=3)
    assert p.dates == [date(2026, 1, 17), date(2026, 1, 18), date(2026, 1, 19)]


def test_explicit_range_is_inclusive_and_may_end_today() -> None:
    p = _plan({"start": "2025-12-30", "end": "2026-01-20"})
    assert (p.start, p.end, len(p.dates)) == (date(2025, 12, 30), TODAY, 22)
    assert p.run_date is None


def test_intraday_recomputes_today_alone() -> None:
    p = _plan({"intraday": True})
    assert (p.start, p.end, p.run_date, p.intraday) == (TODAY, TODAY, None, True)
    assert not _plan({"intraday": False}).intraday
    assert _plan({"intraday": False}).dates == _plan({}).dates


def test_a_range_of_exactly_400_days_is_allowed() -> None:
    p = plan(today=TODAY, window_days=8, start=TODAY - timedelta(days=399), end=TODAY)
    assert len(p.dates) == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"start": "2026-01-05", "end": "2026-01-04"}, "start 2026-01-05 is after end 2026-01-04"),
        ({"start": "2026-01-05", "end": "2026-01-21"}, "end 2026-01-21 is in the future"),
        ({"run_date": "2026-01-21"}, "run_date 2026-01-21 is in the future"),
        ({"start": "2024-11-30", "end": "2026-01-04"}, "spans 401 days; the limit is 400"),
        ({"start": "2026-01-05"}, "start and end must be given together"),
        ({"end": "2026-01-05"}, "start and end must be given together"),
        ({"run_date": "2026-01-05", "start": "2026-01-01", "end": "2026-01-02"}, "not both"),
        ({"run_date": "2026-02-30"}, "run_date is not a valid calendar date"),
        ({"run_date": "01/02/2026"}, "run_date must be a date as YYYY-MM-DD"),
        ({"start": "2026-1-5", "end": "2026-01-06"}, "start must be a date as YYYY-MM-DD"),
        ({"run_date": 20260101}, "run_date must be a date as YYYY-MM-DD"),
        ({"end": None, "start": "2026-01-01"}, "end must be a date as YYYY-MM-DD"),
        # Far dates are refused before any date arithmetic could overflow.
        ({"run_date": "0001-01-03"}, "between 2000-01-01 and 2099-12-31"),
        ({"start": "1999-12-31", "end": "2000-01-01"}, "between 2000-01-01 and 2099-12-31"),
        ({"run_date": "9999-12-31"}, "between 2000-01-01 and 2099-12-31"),
        ({"date": "2026-01-01"}, "unknown field(s) 'date'"),
        ({"intraday": "yes"}, "intraday must be true or false"),
        ({"intraday": 1}, "intraday must be true or false"),
        ({"intraday": True, "run_date": "2026-01-05"}, "intraday runs today only"),
        ({"intraday": True, "start": "2026-01-05", "end": "2026-01-06"}, "today only"),
    ],
)
def test_bad_dates_are_rejected_naming_the_problem(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        _plan(body)
    assert message in exc.value.message


@pytest.mark.parametrize("body", [b"{", b"[]", b'"2026-01-01"', b"null", b"\xff"])
def test_body_must_be_a_json_object(body: bytes) -> None:
    with pytest.raises(InvalidInput, match="JSON"):
        plan_from_body(body, today=TODAY, window_days=8)


def test_deep_nesting_is_400_not_a_recursion_error() -> None:
    for body in (b"[" * 100_000, b'{"a":' * 100_000, b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(InvalidInput, match="nested too deeply"):
            plan_from_body(body, today=TODAY, window_days=8)


# The oldest partition a refresh reads is 30 days (the wait look-back) before its first date.
@pytest.mark.parametrize(
    ("retention", "start", "allowed"),
    [
        (400, TODAY - timedelta(days=399 - 30), True),  # reads today - 399: alive all day
        (400, TODAY - timedelta(days=400 - 30), False),  # reads today - 400: expired at 00:00
        (60, TODAY - timedelta(days=29), True),
        (60, TODAY - timedelta(days=30), False),
        (0, date(1000, 1, 1), True),  # 0: the mirror is kept forever
    ],
)
def test_dates_whose_look_back_reads_expired_mirror_partitions_are_400(
    retention: int, start: date, allowed: bool
) -> None:
    def make() -> Any:
        return plan(
            today=TODAY, window_days=8, start=start, end=start, mirror_retention_days=retention
        )

    if allowed:
        assert make().start == start
    else:
        with pytest.raises(InvalidInput, match=f"MIRROR_RETENTION_DAYS={retention}"):
            make()


def test_a_morning_run_reads_back_window_plus_look_back() -> None:
    # R-8 … R-1 with a 30-day look-back reads from R-38: 39 days must be kept.
    assert plan(today=TODAY, window_days=8, mirror_retention_days=39).run_date == TODAY
    needs = "run_date 2026-01-20 needs mirror partitions from 2025-12-13"
    with pytest.raises(InvalidInput, match=needs):
        plan(today=TODAY, window_days=8, mirror_retention_days=38)


# -- the HTTP function: 400s and 405 never reach storage ------------------------


@pytest.fixture(scope="module")
def refresh_http() -> Any:
    import functions_framework

    return functions_framework.create_app("refresh", str(REPO_ROOT / "functions" / "main.py"))


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"run_date": "tomorrow"}', "run_date must be a date as YYYY-MM-DD"),
        (b'{"run_date": "2026-02-30"}', "not a valid calendar date"),
        (b'{"start": "2026-01-05", "end": "2026-01-01"}', "is after end"),
        (b'{"start": "2020-01-01", "end": "2021-12-31"}', "the limit is 400"),
        (b'{"start": "2026-01-01"}', "given together"),
        (b'{"run_date": 5}', "run_date must be a date as YYYY-MM-DD"),
        (b'{"dates": []}', "unknown field"),
        (b'{"start": "2001-01-01", "end": "2001-01-02"}', "MIRROR_RETENTION_DAYS=400"),
        (b"[" * 50_000, "nested too deeply"),
        (b'{"run_date": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deeply"),
    ],
)
def test_http_400_names_the_problem(refresh_http: Any, body: bytes, fragment: str) -> None:
    resp = refresh_http.test_client().post("/", data=body)
    assert resp.status_code == 400
    assert resp.content_type.startswith("application/json")
    assert fragment in resp.get_json()["error"]


def test_http_future_dates_are_400(refresh_http: Any) -> None:
    tomorrow = (today_utc() + timedelta(days=1)).isoformat()
    client = refresh_http.test_client()
    for body in ({"run_date": tomorrow}, {"start": "2026-01-01", "end": tomorrow}):
        resp = client.post("/", data=json.dumps(body))
        assert resp.status_code == 400
        assert "in the future" in resp.get_json()["error"]


def test_http_get_is_405(refresh_http: Any) -> None:
    resp = refresh_http.test_client().get("/")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "POST"
    assert "POST" in resp.get_json()["error"]
