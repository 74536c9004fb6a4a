"""The export streams: BigQuery result pages are fetched as the body is sent, not before.

Memory then stays flat however long the range (the figure itself is measured
by ``make bench`` and bounded in ``make soak``); here the mechanism is shown
by counting the result pages fetched while the body is read.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from google.cloud.bigquery import table as bq_table
from rbm_analytics.core import clients
from rbm_analytics.core.config import get_settings
from rbm_analytics.export import routes
from rbm_analytics.export.params import parse_export_params

from tests.export_data import Warehouse, daily

DAYS, AGENTS, PAGE_ROWS = 60, 5, 20  # 300 rows: 15 pages of 20


def test_result_pages_are_fetched_as_the_body_is_read(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = date(2026, 1, 1)
    warehouse.load(
        "daily_metrics",
        [
            daily(start + timedelta(days=d), f"agent-{a}", sent=d + a)
            for d in range(DAYS)
            for a in range(AGENTS)
        ],
    )
    fetched: list[int] = []
    fetch = bq_table.RowIterator._get_next_page_response

    def counting(self: Any) -> Any:
        fetched.append(1)
        return fetch(self)

    monkeypatch.setattr(bq_table.RowIterator, "_get_next_page_response", counting)
    monkeypatch.setattr(routes, "page_rows", lambda columns: PAGE_ROWS)
    end = start + timedelta(days=DAYS - 1)
    params = parse_export_params({"start": str(start), "end": str(end)}, today=date(2026, 6, 1))

    body = routes.export_chunks(params, get_settings(), clients.bigquery_client)
    first = next(body)
    at_first_chunk = len(fetched)
    rest = b"".join(body)

    assert first.startswith(b"date,agent_id,sent,delivered,read\r\n")
    assert (first + rest).count(b"\r\n") == DAYS * AGENTS + 1
    # One page (and at most the next) before the first chunk leaves; the rest
    # only as the body is read.
    assert at_first_chunk <= 2, at_first_chunk
    assert len(fetched) >= DAYS * AGENTS // PAGE_ROWS
