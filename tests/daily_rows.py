"""daily_metrics rows for tests and benchmarks, built from the metric catalog.

Columns come from ``metrics/catalog.py``, so a new metric needs no edit here:
counts and sums default to 0, durations to NULL, ``refreshed_at`` to a fixed
time; an average given with its sample count also gets the integer sum of
milliseconds the refresh stores beside it (what weeks and months divide).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from rbm_analytics.metrics.catalog import COLUMNS, METRICS, Combine

REFRESHED_AT = "2026-03-01T06:00:00.000000Z"


def daily(day: str | date, agent: str, **values: Any) -> dict[str, Any]:
    """One daily_metrics row as a dict (for a load job)."""
    unknown = set(values) - {m.name for m in COLUMNS}
    assert not unknown, f"not daily_metrics columns: {unknown}"
    row: dict[str, Any] = {"date": str(day), "agent_id": agent}
    for m in COLUMNS:
        if m.combine is Combine.LATEST:
            row[m.name] = REFRESHED_AT
        else:
            row[m.name] = 0 if m.zero_when_empty else None
    row.update(values)
    for m in COLUMNS:
        if m.combine is Combine.WEIGHTED_AVERAGE and m.sum_ms not in values:
            avg, n = row[m.name], row[str(m.weight)] or 0
            row[str(m.sum_ms)] = 0 if avg is None else round(avg * 1000 * n)
    return row


def insert_daily(table: str, source: str, **exprs: str) -> str:
    """``INSERT INTO table (every column) SELECT … FROM source``: SQL that writes many rows.

    ``exprs`` are SQL expressions per column (``date`` and ``agent_id`` are
    required), evaluated over ``source`` (e.g. ``UNNEST(...) AS d CROSS JOIN ...``).
    """
    unknown = set(exprs) - {"date", "agent_id", *METRICS}
    assert not unknown, f"not daily_metrics columns: {unknown}"
    values = {"date": exprs["date"], "agent_id": exprs["agent_id"]}
    for m in COLUMNS:
        if m.name in exprs:
            values[m.name] = exprs[m.name]
        elif m.combine is Combine.LATEST:
            values[m.name] = f"TIMESTAMP '{REFRESHED_AT}'"
        else:
            values[m.name] = "0" if m.zero_when_empty else "NULL"
    for m in COLUMNS:
        if m.combine is Combine.WEIGHTED_AVERAGE and m.sum_ms not in exprs and m.name in exprs:
            values[str(m.sum_ms)] = (
                f"CAST(ROUND(({exprs[m.name]}) * ({values[str(m.weight)]}) * 1000) AS INT64)"
            )
    columns = ", ".join(values)
    selected = ",\n  ".join(f"{v} AS {k}" for k, v in values.items())
    return f"INSERT INTO `{table}` ({columns})\nSELECT\n  {selected}\nFROM {source}"


def insert_varied_daily(table: str, start: str, end: str, agents: int, **exprs: str) -> str:
    """Every (date, agent) row from ``start`` to ``end`` for ``agents`` agents
    (``agent-01`` …), every metric filled, some varying by agent: the bulk data
    of the export's memory test and benchmark. ``exprs`` add or override columns."""
    return insert_daily(
        table,
        f"UNNEST(GENERATE_DATE_ARRAY(DATE '{start}', DATE '{end}')) AS d "
        f"CROSS JOIN UNNEST(GENERATE_ARRAY(1, {agents})) AS a",
        **{
            "date": "d",
            "agent_id": "FORMAT('agent-%02d', a)",
            "sent": "100 + a",
            "delivered": "90 + a",
            "read": "80 + a",
            "typing_events": "5",
            "user_messages": "40",
            "user_text": "30",
            "user_files": "3",
            "user_locations": "2",
            "suggestion_replies": "3",
            "suggestion_actions": "2",
            "reads_with_reply": "20",
            "read_to_reply_avg_s": "12.5 + a",
            "read_to_reply_p50_s": "10.25",
            "agent_responses": "15",
            "agent_response_avg_s": "30.5",
            "agent_response_p50_s": "25.0",
            "agent_response_p90_s": "90.75",
            **exprs,
        },
    )
