"""``status=1``: which numbers can still move (partial today, provisional inside the window)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from rbm_analytics.core.timeutil import today_utc

from tests.export_data import Warehouse, daily, parse_csv


def _at(day: date, hour: int) -> str:
    return datetime.combine(day, time(hour), tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _row(day: date, refreshed: str, sent: int) -> dict[str, Any]:
    row = daily(day, "acme", sent=sent, delivered=sent, read=sent // 2)
    row["refreshed_at"] = refreshed
    return row


def test_status_column_follows_when_each_day_was_computed(
    export_client: Any, warehouse: Warehouse
) -> None:
    today = today_utc()
    d = lambda n: today - timedelta(days=n)  # noqa: E731
    warehouse.load(
        "daily_metrics",
        [
            _row(d(0), _at(d(0), 0), 4),  # today, an intraday run
            _row(d(1), _at(d(1), 23), 9),  # yesterday's last intraday run; no morning run yet
            _row(d(2), _at(d(0), 0), 9),  # closed, recomputed at midnight: not partial
            _row(d(7), _at(d(0), 0), 9),  # the window's oldest day still to be recomputed
            _row(d(8), _at(d(0), 0), 9),  # computed at its cutoff: final
            _row(d(9), _at(d(1), 6), 9),
        ],
    )
    start, end = d(10), d(0)
    resp = export_client.get("/", query_string={"start": start, "end": end, "status": "1"})
    assert resp.status_code == 200, resp.data
    rows = parse_csv(resp.data)
    assert list(rows[0]) == ["date", "agent_id", "sent", "delivered", "read", "status"]
    status = {date.fromisoformat(r["date"]): r["status"] for r in rows}
    assert status == {
        d(0): "partial",
        d(1): "partial",  # computed before it ended: never shown as closed
        d(2): "provisional",
        d(3): "provisional",  # no row: the clock says receipts can still count
        d(4): "provisional",
        d(5): "provisional",
        d(6): "provisional",
        d(7): "provisional",
        d(8): "final",
        d(9): "final",
        d(10): "final",  # no row, outside the window
    }

    # The default CSV keeps its columns.
    plain = export_client.get("/", query_string={"start": start, "end": end})
    assert plain.data.splitlines()[0] == b"date,agent_id,sent,delivered,read"
    assert [r["sent"] for r in parse_csv(plain.data)] == [r["sent"] for r in rows]


def test_a_week_or_month_takes_its_worst_day(export_client: Any, warehouse: Warehouse) -> None:
    today = today_utc()
    monday = today - timedelta(days=today.weekday())
    old = monday - timedelta(days=35)
    warehouse.load(
        "daily_metrics",
        [_row(today, _at(today, 0), 3), _row(old, _at(old + timedelta(days=9), 6), 5)],
    )
    resp = export_client.get(
        "/",
        query_string={"start": old, "end": today, "scale": "week", "status": "1",
                      "format": "json"},
    )  # fmt: skip
    assert resp.status_code == 200, resp.data
    weeks = {r["date"]: r["status"] for r in resp.get_json()}
    assert weeks[monday.isoformat()] == "partial"
    assert weeks[old.isoformat()] == "final"
    last_week = (monday - timedelta(days=7)).isoformat()
    # Last week holds days inside the window (no rows there: the clock decides).
    assert weeks[last_week] == "provisional"


def test_status_must_be_0_or_1(offline_client: Any) -> None:
    resp = offline_client.get("/", query_string={"status": "yes"})
    assert resp.status_code == 400
    assert "status" in resp.get_json()["error"]
