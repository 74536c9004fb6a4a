"""``rbm-analytics export``: the same rows as the function, on stdout or into a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rbm_analytics_dev import cli

from tests.export_data import Warehouse, daily


def test_csv_to_stdout_matches_the_function(
    export_client: Any, warehouse: Warehouse, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    warehouse.load(
        "daily_metrics",
        [daily("2026-01-05", "acme", sent=4, read=1), daily("2026-01-13", "acme", sent=2)],
    )
    args = {
        "start": "2026-01-05",
        "end": "2026-01-18",
        "scale": "week",
        "metrics": "sent,read_rate",
    }
    code = cli.main(["export", *(f"--{k}={v}" for k, v in args.items())])
    out = capsysbinary.readouterr().out
    assert code == 0
    assert out == export_client.get("/", query_string=args).data
    assert out == (
        b"date,agent_id,sent,read_rate\r\n2026-01-05,acme,4,0.2500\r\n2026-01-12,acme,2,0.0000\r\n"
    )


def test_json_into_a_file(warehouse: Warehouse, tmp_path: Path) -> None:
    warehouse.load("daily_metrics", [daily("2026-01-05", "acme", sent=3)])
    target = tmp_path / "out.json"
    code = cli.main(
        ["export", "--start", "2026-01-05", "--end", "2026-01-05", "--format", "json",
         "--metrics", "sent", "--output", str(target)]
    )  # fmt: skip
    assert code == 0
    assert json.loads(target.read_text()) == [{"date": "2026-01-05", "agent_id": "acme", "sent": 3}]
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_bad_option_exits_2_with_the_message_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out.csv"
    code = cli.main(["export", "--metrics", "sent,nope", "--output", str(target)])
    assert code == 2
    err = capsys.readouterr().err
    assert "rbm-analytics export: unknown metric 'nope'" in err
    assert not target.exists()


def test_missing_tables_exit_1(warehouse: Warehouse, capsys: pytest.CaptureFixture[str]) -> None:
    warehouse.client.delete_table(warehouse.table("daily_metrics"))
    assert cli.main(["export", "--start", "2026-01-01", "--end", "2026-01-02"]) == 1
    assert "refresh" in capsys.readouterr().err
