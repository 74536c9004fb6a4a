"""The export as deployed: functions-framework in its own process, the body chunked."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from rbm_analytics_dev.local.emulators import ManagedProcess, free_port

from tests.daily_rows import insert_daily
from tests.export_data import Warehouse, parse_csv
from tests.support import REPO_ROOT


@pytest.fixture
def served_export(warehouse: Warehouse, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = ManagedProcess(
        name="export function",
        argv=[str(Path(sys.executable).parent / "functions-framework"), "--target", "export",
              "--source", str(REPO_ROOT / "functions" / "main.py"), "--port", str(port)],
        port=port,
        ready_url=f"http://127.0.0.1:{port}/ui",
        env={k: v for k, v in os.environ.items()
             if k.startswith(("GOOGLE_", "BIGQUERY_", "BQ_"))},
        log_path=tmp_path / "export.log",
    ).start()  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def test_functions_framework_streams_the_csv_in_chunks(
    served_export: str, warehouse: Warehouse
) -> None:
    warehouse.client.query(
        insert_daily(
            warehouse.table("daily_metrics"),
            "UNNEST(GENERATE_DATE_ARRAY(DATE '2025-01-01', DATE '2025-07-19')) AS d "
            "CROSS JOIN UNNEST(GENERATE_ARRAY(1, 40)) AS a",
            date="d",
            agent_id="FORMAT('agent-%02d', a)",
            sent="a",
            delivered="a",
        )
    ).result()
    with requests.get(
        f"{served_export}/",
        params={"start": "2025-01-01", "end": "2025-07-19"},
        stream=True,
        timeout=120,
    ) as resp:
        assert resp.status_code == 200
        # No Content-Length: the server never held the whole body.
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in resp.headers
        assert resp.headers["Content-Disposition"] == (
            'attachment; filename="rbm-analytics_2025-01-01_2025-07-19_day.csv"'
        )
        body = b"".join(resp.iter_content(chunk_size=None))
    rows = parse_csv(body)
    assert len(rows) == 200 * 40  # more than one result page (6,000 rows)
    assert rows[0] == {"date": "2025-01-01", "agent_id": "agent-01", "sent": "1",
                       "delivered": "1", "read": "0"}  # fmt: skip
    assert rows[-1]["date"] == "2025-07-19" and rows[-1]["agent_id"] == "agent-40"
