"""Today as it happens: intraday runs write a partial row, the next morning's
refresh replaces it with the closed day's numbers, and each run logs one
"daily metrics" line per agent and day for the alerts.

The day simulated is yesterday (UTC), so every event is in the past for
ingest; the refresh's clock stands on that day for the intraday runs and on
today's morning for the scheduled run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from rbm_analytics.core.timeutil import today_utc
from rbm_analytics.refresh import routes

from tests.integration.refresh_support import Traffic, metrics_by_key, post_refresh
from tests.support import REPO_ROOT

AGENTS = ("acme-agent", "bravo-agent")


@pytest.fixture(scope="module")
def export_app() -> Any:
    import functions_framework

    return functions_framework.create_app("export", str(REPO_ROOT / "functions" / "main.py"))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime]]:
    """Set ``clock[0]`` to move the refresh's "now"."""
    now = [datetime.now(UTC)]
    monkeypatch.setattr(routes, "_now", lambda: now[0])
    yield now


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def _daily_lines(out: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [e for e in lines if e.get("message") == "daily metrics"]


def _status(export_app: Any, day: date) -> dict[str, dict[str, str]]:
    resp = export_app.test_client().get(
        "/", query_string={"start": day, "end": day, "status": "1", "format": "json",
                           "metrics": "sent,delivered,read"},
    )  # fmt: skip
    assert resp.status_code == 200, resp.data
    return {r["agent_id"]: r for r in resp.get_json()}


def test_intraday_partial_row_then_the_morning_refresh_closes_the_day(
    ingest_client: Any,
    bq_dataset: str,
    export_app: Any,
    clock: list[datetime],
    capsys: pytest.CaptureFixture[str],
) -> None:
    day = today_utc() - timedelta(days=1)
    traffic = Traffic(ingest_client)
    phone = "+12223334444"

    # Morning of the day: 10 messages from acme, 4 from bravo; some receipts.
    morning = [(f"m{i}", AGENTS[0], phone, _at(day, 8, i)) for i in range(10)]
    morning += [(f"b{i}", AGENTS[1], phone, _at(day, 9, i)) for i in range(4)]
    traffic.agent_messages(morning)
    for mid, agent, _, _ in morning[:6] + morning[10:12]:
        traffic.receipt("DELIVERED", mid, agent, phone, _at(day, 10))
    for mid, agent, _, _ in morning[:3]:
        traffic.receipt("READ", mid, agent, phone, _at(day, 11))

    # Noon: the hourly intraday run computes the day so far.
    clock[0] = _at(day, 12)
    capsys.readouterr()
    summary = post_refresh({"intraday": True})
    assert summary["intraday"] is True and summary["dates"] == [day.isoformat()]
    rows = metrics_by_key(bq_dataset)
    assert {k: (r["sent"], r["delivered"], r["read"]) for k, r in rows.items()} == {
        (day.isoformat(), AGENTS[0]): (10, 6, 3),
        (day.isoformat(), AGENTS[1]): (4, 2, 0),
    }
    lines = _daily_lines(capsys.readouterr().out)
    assert [(e["date"], e["agent_id"], e["sent"], e["delivered"], e["read"], e["partial"],
             e["age_days"], e["delivery_rate"], e["read_rate"]) for e in lines] == [
        (day.isoformat(), AGENTS[0], 10, 6, 3, True, 0, 0.6, 0.3),
        (day.isoformat(), AGENTS[1], 4, 2, 0, True, 0, 0.5, 0.0),
    ]  # fmt: skip
    assert all(e["severity"] == "INFO" and e["run_id"] == summary["run_id"] for e in lines)
    # Computed while the day was running: partial, whatever today is now.
    assert {a: r["status"] for a, r in _status(export_app, day).items()} == {
        AGENTS[0]: "partial",
        AGENTS[1]: "partial",
    }

    # The afternoon: more messages and receipts, and a late intraday run.
    afternoon = [(f"a{i}", AGENTS[0], phone, _at(day, 15, i)) for i in range(5)]
    traffic.agent_messages(afternoon)
    for mid, agent, _, _ in afternoon + morning[6:10]:
        traffic.receipt("DELIVERED", mid, agent, phone, _at(day, 20))
    for mid, agent, _, _ in morning[3:8] + morning[12:14]:
        traffic.receipt("READ", mid, agent, phone, _at(day, 23, 30))
    clock[0] = _at(day, 23, 59)
    post_refresh({"intraday": True})
    assert _status(export_app, day)[AGENTS[0]]["status"] == "partial"

    # Next morning, 06:00: the scheduled refresh recomputes the window, the day included.
    clock[0] = _at(day + timedelta(days=1), 6)
    capsys.readouterr()
    summary = post_refresh({})
    assert day.isoformat() in summary["dates"] and summary["intraday"] is False
    got = _status(export_app, day)
    assert {a: (int(r["sent"]), int(r["delivered"]), int(r["read"]), r["status"])
            for a, r in got.items()} == {
        AGENTS[0]: (15, 15, 8, "provisional"),  # closed: never partial again
        AGENTS[1]: (4, 2, 2, "provisional"),  # a READ without a DELIVERED still counts
    }  # fmt: skip
    lines = _daily_lines(capsys.readouterr().out)
    assert [(e["agent_id"], e["sent"], e["delivered"], e["read"], e["partial"], e["age_days"])
            for e in lines] == [
        (AGENTS[0], 15, 15, 8, False, 1),
        (AGENTS[1], 4, 2, 2, False, 1),
    ]  # fmt: skip
