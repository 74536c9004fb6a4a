"""Day-scale export through the real handler and the BigQuery emulator."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.export_data import Warehouse, daily, parse_csv


def _get(client: Any, **params: str) -> Any:
    return client.get("/", query_string=params)


def test_day_csv_is_zero_filled_sorted_with_header_and_filename(
    export_client: Any, warehouse: Warehouse
) -> None:
    warehouse.load(
        "daily_metrics",
        [
            daily("2026-01-02", "zeta-agent", sent=5, delivered=4, read=3),
            daily("2026-01-01", "acme-agent", sent=10, delivered=9, read=7),
            daily("2026-01-03", "acme-agent", sent=2, delivered=2, read=0),
            # Outside the range: neither counted nor a reason to list its agent.
            daily("2026-01-04", "late-agent", sent=99, delivered=99, read=99),
            daily("2025-12-31", "acme-agent", sent=50, delivered=50, read=50),
        ],
    )
    resp = _get(export_client, start="2026-01-01", end="2026-01-03")
    assert resp.status_code == 200, resp.data
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"] == (
        'attachment; filename="rbm-analytics_2026-01-01_2026-01-03_day.csv"'
    )
    assert resp.data.decode() == (
        "date,agent_id,sent,delivered,read\r\n"
        "2026-01-01,acme-agent,10,9,7\r\n"
        "2026-01-01,zeta-agent,0,0,0\r\n"
        "2026-01-02,acme-agent,0,0,0\r\n"
        "2026-01-02,zeta-agent,5,4,3\r\n"
        "2026-01-03,acme-agent,2,2,0\r\n"
        "2026-01-03,zeta-agent,0,0,0\r\n"
    )


def test_metrics_in_the_order_asked_with_rates_and_empty_cells(
    export_client: Any, warehouse: Warehouse
) -> None:
    warehouse.load(
        "daily_metrics",
        [
            daily("2026-01-01", "acme", sent=3, delivered=2, read=1, reads_with_reply=1,
                  read_to_reply_avg_s=12.5, read_to_reply_p50_s=12.5),
            daily("2026-01-02", "acme", sent=0, user_messages=4),
        ],
    )  # fmt: skip
    resp = _get(
        export_client,
        start="2026-01-01",
        end="2026-01-03",
        metrics="read_rate,user_messages,delivery_rate,read_to_reply_avg_s,read_to_reply_p50_s",
    )
    assert resp.status_code == 200, resp.data
    lines = resp.data.decode().split("\r\n")
    assert lines[0] == (
        "date,agent_id,read_rate,user_messages,delivery_rate,read_to_reply_avg_s,"
        "read_to_reply_p50_s"
    )
    assert lines[1] == "2026-01-01,acme,0.3333,0,0.6667,12.5,12.5"
    # sent = 0: the rates are empty cells, as are the averages without samples.
    assert lines[2] == "2026-01-02,acme,,4,,,"
    assert lines[3] == "2026-01-03,acme,,0,,,"
    assert lines[4:] == [""]


def test_every_daily_metrics_column_is_a_metric(export_client: Any, warehouse: Warehouse) -> None:
    row = daily(
        "2026-01-01", "acme", sent=20, delivered=19, read=18, typing_events=17,
        user_messages=16, user_text=15, user_files=14, user_locations=13,
        suggestion_replies=12, suggestion_actions=11, reads_with_reply=10,
        read_to_reply_avg_s=9.5, read_to_reply_p50_s=8.25, agent_responses=7,
        agent_response_avg_s=6.5, agent_response_p50_s=5.5, agent_response_p90_s=4.5,
    )  # fmt: skip
    warehouse.load("daily_metrics", [row])
    names = [n for n in row if n not in ("date", "agent_id")]
    resp = _get(export_client, start="2026-01-01", end="2026-01-01", metrics=",".join(names))
    assert resp.status_code == 200, resp.data
    (got,) = parse_csv(resp.data)
    expected = {k: str(v) for k, v in row.items()}
    expected["refreshed_at"] = "2026-03-01T06:00:00.000000Z"
    assert got == expected


def test_defaults_are_the_30_days_ending_yesterday(
    export_client: Any, warehouse: Warehouse
) -> None:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    first = yesterday - timedelta(days=29)
    warehouse.load(
        "daily_metrics",
        [
            daily(first, "acme", sent=1, delivered=1, read=1),
            daily(yesterday, "acme", sent=2, delivered=2, read=2),
            daily(first - timedelta(days=1), "acme", sent=100),
            daily(yesterday + timedelta(days=1), "acme", sent=100),
        ],
    )
    resp = export_client.get("/")
    assert resp.status_code == 200, resp.data
    assert resp.headers["Content-Disposition"] == (
        f'attachment; filename="rbm-analytics_{first}_{yesterday}_day.csv"'
    )
    rows = parse_csv(resp.data)
    assert list(rows[0]) == ["date", "agent_id", "sent", "delivered", "read"]
    assert [r["date"] for r in rows] == [str(first + timedelta(days=i)) for i in range(30)]
    assert rows[0]["sent"] == "1"
    assert rows[-1]["sent"] == "2"
    assert sum(int(r["sent"]) for r in rows) == 3


def test_agent_filter_keeps_that_agent_even_when_all_zero(
    export_client: Any, warehouse: Warehouse
) -> None:
    warehouse.load(
        "daily_metrics",
        [daily("2026-01-01", "acme", sent=3), daily("2026-01-02", "other", sent=4)],
    )
    only = parse_csv(_get(export_client, start="2026-01-01", end="2026-01-02", agent="other").data)
    assert [(r["date"], r["agent_id"], r["sent"]) for r in only] == [
        ("2026-01-01", "other", "0"),
        ("2026-01-02", "other", "4"),
    ]
    quiet = parse_csv(_get(export_client, start="2026-01-01", end="2026-01-02", agent="new").data)
    assert [(r["date"], r["agent_id"], r["sent"]) for r in quiet] == [
        ("2026-01-01", "new", "0"),
        ("2026-01-02", "new", "0"),
    ]


def test_empty_range_has_only_the_header(export_client: Any, warehouse: Warehouse) -> None:
    resp = _get(export_client, start="2026-01-01", end="2026-01-31", metrics="sent")
    assert resp.status_code == 200
    assert resp.data == b"date,agent_id,sent\r\n"


def test_rfc4180_quoting_of_agent_ids(export_client: Any, warehouse: Warehouse) -> None:
    # Ingest never accepts such ids; written directly, they prove the quoting.
    odd = 'acme, "the" agent'
    newline = "line\nbreak"
    warehouse.load(
        "daily_metrics",
        [daily("2026-01-01", odd, sent=1), daily("2026-01-01", newline, sent=2),
         daily("2026-01-01", "ünïcode-agent", sent=3)],
    )  # fmt: skip
    resp = _get(export_client, start="2026-01-01", end="2026-01-01", metrics="sent")
    body = resp.data.decode("utf-8")
    assert body == (
        "date,agent_id,sent\r\n"
        '2026-01-01,"acme, ""the"" agent",1\r\n'
        '2026-01-01,"line\nbreak",2\r\n'
        "2026-01-01,ünïcode-agent,3\r\n"
    )
    parsed = list(csv.reader(io.StringIO(body, newline="")))
    assert [r[1] for r in parsed[1:]] == [odd, newline, "ünïcode-agent"]


def test_json_has_the_same_rows_with_numbers_and_nulls(
    export_client: Any, warehouse: Warehouse
) -> None:
    warehouse.load(
        "daily_metrics",
        [
            daily("2026-01-01", "acme", sent=4, delivered=3, read=2, agent_responses=2,
                  agent_response_avg_s=1.25),
            daily("2026-01-02", 'b "q"', sent=0),
        ],
    )  # fmt: skip
    params = {
        "start": "2026-01-01",
        "end": "2026-01-02",
        "metrics": "sent,read_rate,agent_response_avg_s",
    }
    resp = _get(export_client, format="json", **params)
    assert resp.status_code == 200, resp.data
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Content-Disposition"] == (
        'attachment; filename="rbm-analytics_2026-01-01_2026-01-02_day.json"'
    )
    assert json.loads(resp.data) == [
        {"date": "2026-01-01", "agent_id": "acme", "sent": 4, "read_rate": 0.5,
         "agent_response_avg_s": 1.25},
        {"date": "2026-01-01", "agent_id": 'b "q"', "sent": 0, "read_rate": None,
         "agent_response_avg_s": None},
        {"date": "2026-01-02", "agent_id": "acme", "sent": 0, "read_rate": None,
         "agent_response_avg_s": None},
        {"date": "2026-01-02", "agent_id": 'b "q"', "sent": 0, "read_rate": None,
         "agent_response_avg_s": None},
    ]  # fmt: skip
    as_csv = parse_csv(_get(export_client, **params).data)
    assert [r["agent_id"] for r in as_csv] == ["acme", 'b "q"', "acme", 'b "q"']
    assert [r["read_rate"] for r in as_csv] == ["0.5000", "", "", ""]
    empty = _get(export_client, format="json", start="2026-02-01", end="2026-02-01")
    assert json.loads(empty.data) == []
