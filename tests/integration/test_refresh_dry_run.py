"""``rbm-analytics refresh --dry-run`` and ``export --dry-run`` against a recorded BigQuery answer.

The emulator answers every dry run with 0 bytes, so the code path that reads
BigQuery's figure is tested against a loopback fake of the REST API: it
records each request and answers ``jobs.insert`` with a dry-run job resource
shaped like BigQuery's (int64 values as JSON strings, no jobId). The tests
assert the exact requests: dryRun true, useQueryCache false, the typed
parameters, never a NULL one.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rbm_analytics.core import clients
from rbm_analytics_dev import cli

from tests.support import PROJECT

DATASET = "rbm_analytics"
BYTES = 67_742_205


def dry_run_answer(request: dict[str, Any], n: int) -> dict[str, Any]:
    """BigQuery's jobs.insert answer to a dry run (the REST Job resource)."""
    processed = str(BYTES * n)
    return {
        "kind": "bigquery#job",
        "etag": "x8sTJB+Kq9GHl2uRk3ET1w==",
        "jobReference": {"projectId": PROJECT, "location": "US"},
        "configuration": {**request["configuration"], "jobType": "QUERY"},
        "status": {"state": "DONE"},
        "statistics": {
            "creationTime": "1764628537112",
            "totalBytesProcessed": processed,
            "query": {
                "totalBytesProcessed": processed,
                "totalBytesBilled": "0",
                "totalBytesProcessedAccuracy": "PRECISE",
                "cacheHit": False,
                "statementType": "SELECT",
            },
        },
        "user_email": "analyst@example.com",
    }


class FakeBigQuery(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: FakeBigQuery

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        path = self.path.split("?")[0]
        self.server.requests.append(("POST", path, body))
        if path.endswith("/jobs"):
            jobs = sum(1 for m, p, _ in self.server.requests if m == "POST" and p == path)
            self._answer(200, dry_run_answer(body, jobs))
        elif path.endswith("/tables"):
            self._answer(200, {**body, "kind": "bigquery#table"})
        else:
            self._answer(404, {"error": {"code": 404, "message": f"no {path}"}})

    def do_DELETE(self) -> None:
        self.server.requests.append(("DELETE", self.path.split("?")[0], None))
        self._answer(204)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBigQuery]:
    server = FakeBigQuery()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", f"127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("BQ_DATASET", DATASET)
    clients.reset()
    yield server
    server.shutdown()
    server.server_close()


def _jobs(fake: FakeBigQuery) -> list[dict[str, Any]]:
    return [b for m, p, b in fake.requests if m == "POST" and p.endswith("/jobs")]


def _params(job: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for p in job["configuration"]["query"]["queryParameters"]:
        value = p["parameterValue"]
        assert "value" in value or "arrayValues" in value, f"NULL parameter {p['name']}"
        if "arrayValues" in value:
            out[p["name"]] = (p["parameterType"]["arrayType"]["type"],
                              [v["value"] for v in value["arrayValues"]])  # fmt: skip
        else:
            out[p["name"]] = (p["parameterType"]["type"], value["value"])
    return out


def test_export_dry_run_sends_one_dry_run_and_prints_its_bytes(
    fake: FakeBigQuery, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", "--dry-run", "--start", "2026-01-01", "--end", "2026-03-31",
            "--scale", "month", "--metrics", "sent,agent_response_p90_s",
            "--agent", "acme"]  # fmt: skip
    assert cli.main(argv) == 0
    (job,) = _jobs(fake)
    config = job["configuration"]
    assert config["dryRun"] is True
    assert config["query"]["useQueryCache"] is False
    assert config["query"]["useLegacySql"] is False
    assert _params(job) == {
        "start": ("DATE", "2026-01-01"),
        "end": ("DATE", "2026-03-31"),
        "agent": ("STRING", "acme"),
    }
    assert "PERCENTILE_DISC(`duration_ms`, 0.9)" in config["query"]["query"]
    out = capsys.readouterr().out
    assert "export query  67.7 MB (67,742,205 bytes)" in out
    assert "total         67.7 MB (67,742,205 bytes)" in out
    assert "answers every dry run with 0 bytes" in out  # an emulator host is set


def test_refresh_dry_run_dry_runs_every_statement(
    fake: FakeBigQuery, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["refresh", "--dry-run", "--run-date", "2026-11-20"]) == 0
    jobs = _jobs(fake)
    assert all(j["configuration"]["dryRun"] is True for j in jobs)
    assert all(j["configuration"]["query"]["useQueryCache"] is False for j in jobs)
    texts = [j["configuration"]["query"]["query"] for j in jobs]
    kinds = [re.sub(r"--[^\n]*", "", t).split()[0] for t in texts]
    assert kinds == ["MERGE"] * 3 + ["DELETE"] * 3 + ["INSERT"] * 4 + ["SELECT", "SELECT",
                                                                     "INSERT"]  # fmt: skip
    assert not any("TRANSACTION" in t for t in texts)

    # The MERGEs name exactly the staged dates: the window and the run date.
    window = [str(date(2026, 11, 12) + timedelta(days=i)) for i in range(8)]
    for job in jobs[:3]:
        assert _params(job) == {"dates": ("DATE", [*window, "2026-11-20"])}
    daily = _params(jobs[3])
    assert {k: v for k, v in daily.items() if k != "refreshed_at"} == {
        "start_date": ("DATE", "2026-11-12"),
        "end_date": ("DATE", "2026-11-19"),
        "window_days": ("INT64", "8"),
        "lookback_days": ("INT64", "30"),
    }
    run = _params(jobs[-1])
    assert run["error"] == ("STRING", "") and run["has_first_date"] == ("BOOL", "true")

    # Each MERGE's staging table existed for the dry run and is gone after it.
    created = [b["tableReference"]["tableId"] for m, p, b in fake.requests
               if m == "POST" and p.endswith("/tables")]  # fmt: skip
    deleted = [p.rsplit("/", 1)[1] for m, p, _ in fake.requests if m == "DELETE"]
    assert len(created) == 3 and sorted(created) == sorted(deleted)
    assert all(f"{DATASET}.{t}`" in texts[i] for i, t in enumerate(created))

    out = capsys.readouterr().out
    assert "merge agent_messages" in out and "(67,742,205 bytes)" in out
    total = sum(BYTES * n for n in range(1, len(jobs) + 1))
    assert f"({total:,} bytes)" in out
