"""The export's parameters and SQL, without BigQuery."""

from __future__ import annotations

import re
from datetime import date

import pytest
from rbm_analytics.core.config import Settings
from rbm_analytics.core.errors import ConfigError, InvalidInput
from rbm_analytics.export.params import parse_export_params
from rbm_analytics.export.query import METRICS, build_export_query
from rbm_analytics.export.routes import page_rows

TODAY = date(2026, 3, 1)
SETTINGS = Settings(project="demo-rbm-test", bq_dataset="rbm_analytics")


def test_defaults_are_the_30_days_ending_yesterday() -> None:
    p = parse_export_params({}, TODAY)
    assert (p.start, p.end) == (date(2026, 1, 30), date(2026, 2, 28))
    assert (p.scale, p.metrics, p.agent, p.format) == (
        "day",
        ("sent", "delivered", "read"),
        None,
        "csv",
    )
    assert p.filename == "rbm-analytics_2026-01-30_2026-02-28_day.csv"


def test_only_start_or_only_end() -> None:
    assert parse_export_params({"end": "2026-01-30"}, TODAY).start == date(2026, 1, 1)
    assert parse_export_params({"start": "2026-02-20"}, TODAY).end == date(2026, 2, 28)
    with pytest.raises(InvalidInput, match="after end"):
        parse_export_params({"start": "2026-03-05"}, TODAY)


@pytest.mark.parametrize(
    ("start", "end", "ok"),
    [("2023-01-01", "2025-12-31", True), ("2023-01-01", "2026-01-01", False),
     ("2021-01-01", "2023-12-31", True), ("2026-01-01", "2026-01-01", True)],
)  # fmt: skip
def test_range_limit(start: str, end: str, ok: bool) -> None:
    if ok:
        parse_export_params({"start": start, "end": end}, TODAY)
    else:
        with pytest.raises(InvalidInput, match="at most 1096 days"):
            parse_export_params({"start": start, "end": end}, TODAY)


def test_user_values_are_parameters_never_sql() -> None:
    agent = "x'); DROP TABLE t; --"
    # Not an agent id: refused at the edge ...
    with pytest.raises(InvalidInput, match="agent must be a valid agent id"):
        parse_export_params({"agent": agent}, TODAY)
    # ... and even if it got through, it would travel as a parameter.
    p = parse_export_params({"start": "2026-01-01", "end": "2026-01-31"}, TODAY)
    q = build_export_query(SETTINGS, start=p.start, end=p.end, scale="week",
                           metrics=list(METRICS), agent=agent)  # fmt: skip
    assert agent not in q.sql and "2026-01" not in q.sql
    assert {(x.name, x.type_, x.value) for x in q.parameters} == {
        ("start", "DATE", date(2026, 1, 1)),
        ("end", "DATE", date(2026, 1, 31)),
        ("agent", "STRING", agent),
        ("scale", "STRING", "week"),
    }


def test_only_the_tables_a_selection_needs_are_read() -> None:
    day = build_export_query(SETTINGS, start=TODAY, end=TODAY, scale="day",
                             metrics=["agent_response_p90_s"], agent=None)  # fmt: skip
    assert "response_samples" not in day.sql
    week = build_export_query(SETTINGS, start=TODAY, end=TODAY, scale="week",
                              metrics=["agent_response_p90_s"], agent=None)  # fmt: skip
    assert "`demo-rbm-test.rbm_analytics.response_samples`" in week.sql
    assert "PERCENTILE_DISC(`duration_ms`, 0.9) OVER period_series" in week.sql
    assert "read_to_reply" not in week.sql


@pytest.mark.parametrize("scale", ["day", "week", "month"])
@pytest.mark.parametrize("total", [False, True])
def test_reach_comes_from_the_authorized_function_never_the_mirror(scale: str, total: bool) -> None:
    q = build_export_query(SETTINGS, start=TODAY, end=TODAY, scale=scale, total=total,
                           metrics=list(METRICS), agent=None)  # fmt: skip
    read = set(re.findall(r"`demo-rbm-test\.(\w+\.\w+)`", q.sql))
    assert read <= {"rbm_analytics.daily_metrics", "rbm_analytics.response_samples",
                    "rbm_analytics_reach.period_reach"}  # fmt: skip
    reach = "`demo-rbm-test.rbm_analytics_reach.period_reach`(@start, @end, @scale)"
    # An agent's day is its daily_metrics row; weeks, months and the
    # all-agents row count distinct users over the period.
    assert (reach in q.sql) == (scale != "day" or total)
    without = build_export_query(SETTINGS, start=TODAY, end=TODAY, scale=scale, total=total,
                                 metrics=["sent", "read_rate"], agent=None)  # fmt: skip
    assert "period_reach" not in without.sql


@pytest.mark.parametrize("dataset", ["bad-name", "a`b", ""])
def test_dataset_must_be_an_id(dataset: str) -> None:
    with pytest.raises(ConfigError, match="BQ_DATASET"):
        build_export_query(Settings(project="demo-rbm-test", bq_dataset=dataset), start=TODAY,
                           end=TODAY, scale="day", metrics=["sent"], agent=None)  # fmt: skip


def test_page_size_follows_the_columns() -> None:
    assert page_rows(5) == 6000
    assert page_rows(22) == 1363
    assert page_rows(1) == 10_000
    assert page_rows(1000) == 500
