"""CSV and JSON encodings of export rows, one chunk per page of rows.

Each page is encoded into one bytes chunk and handed on, so memory holds at
most one page whatever the number of rows. CSV follows RFC 4180 (``csv``
module quoting, CRLF line ends), UTF-8 without a byte-order mark; a NULL is an
empty cell. JSON is one array of objects with numbers as numbers and NULL as
null.

A CSV text cell that a spreadsheet would run as a formula — one beginning
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return — is written with
a leading ``'``, which spreadsheets show as text (OWASP's advice against CSV
injection). Numbers and dates are never text cells: a negative count would
stay a number. JSON is data, not a sheet, and is written as is.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

from rbm_analytics.core.timeutil import datetime_to_us, format_us
from rbm_analytics.metrics.catalog import METRICS, Combine

Row = Sequence[Any]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _rate_columns(columns: Sequence[str]) -> frozenset[int]:
    return frozenset(
        i
        for i, name in enumerate(columns)
        if name in METRICS and METRICS[name].combine is Combine.RATE
    )


def _json_value(value: Any, rate: bool) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_us(datetime_to_us(value))
    if isinstance(value, date):
        return value.isoformat()
    if rate:
        return round(float(value), 4)
    return value


def _csv_cell(value: Any, rate: bool) -> str:
    if value is None:
        return ""
    if rate:
        return f"{float(value):.4f}"
    if isinstance(value, datetime):
        return format_us(datetime_to_us(value))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return text_cell(value)
    return str(value)


def text_cell(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_chunks(columns: Sequence[str], pages: Iterable[Iterable[Row]]) -> Iterator[bytes]:
    """The header, then one chunk of CSV lines per page."""
    rates = _rate_columns(columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    yield buf.getvalue().encode()
    for page in pages:
        buf.seek(0)
        buf.truncate()
        for row in page:
            writer.writerow([_csv_cell(v, i in rates) for i, v in enumerate(row)])
        if buf.tell():
            yield buf.getvalue().encode()


def json_chunks(columns: Sequence[str], pages: Iterable[Iterable[Row]]) -> Iterator[bytes]:
    """``[``, then the objects of each page as one chunk, then ``]``."""
    rates = _rate_columns(columns)
    first = True
    yield b"["
    for page in pages:
        parts: list[str] = []
        for row in page:
            obj = {
                name: _json_value(value, i in rates)
                for i, (name, value) in enumerate(zip(columns, row, strict=True))
            }
            parts.append(("\n" if first else ",\n") + json.dumps(obj, ensure_ascii=False))
            first = False
        if parts:
            yield "".join(parts).encode()
    yield b"\n]\n"
