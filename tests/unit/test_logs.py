"""One JSON object per line, whatever the fields hold."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from rbm_analytics.core import logs


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    assert out.endswith("\n")
    return [json.loads(line) for line in out.splitlines()]


def test_a_line_has_severity_message_time_and_the_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.emit("WARNING", "ingest request", route="webhook", stored=1, agent_ids=["a", "b"])
    [line] = _lines(capsys)
    assert line["severity"] == "WARNING"
    assert line["message"] == "ingest request"
    assert (line["route"], line["stored"], line["agent_ids"]) == ("webhook", 1, ["a", "b"])
    assert datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        (2**70, 2**70),  # past 64 bits
        ("\ud800", "\ud800"),  # a lone surrogate
        ({1: "x"}, {"1": "x"}),  # a key that is not a string
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02 03:04:05+00:00"),
        (date(2026, 1, 2), "2026-01-02"),
        (ValueError("boom"), "boom"),
        ("Zoë ✓", "Zoë ✓"),
    ],
)
def test_any_field_value_still_gives_one_line(
    value: object, logged: object, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.info("refresh request", value=value, after="kept")
    [line] = _lines(capsys)
    assert line["value"] == logged
    assert line["after"] == "kept"
