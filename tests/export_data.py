"""Known rows for the export tests, loaded into the BigQuery emulator."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from google.cloud import bigquery
from rbm_analytics.core.tables import table_defs

from tests.daily_rows import REFRESHED_AT, daily

__all__ = ["REFRESHED_AT", "daily"]


def sample(day: str | date, agent: str, metric: str, seconds: float) -> dict[str, Any]:
    """A response_samples row; ``seconds`` must be whole milliseconds."""
    ms = round(seconds * 1000)
    assert ms / 1000 == seconds, f"{seconds} is not whole milliseconds"
    return {"date": str(day), "agent_id": agent, "metric": metric, "duration_ms": ms,
            "seconds": ms / 1000}  # fmt: skip


def parse_csv(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


@dataclass
class Warehouse:
    client: bigquery.Client
    project: str
    dataset: str

    def table(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{name}"

    def load(self, name: str, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows with a load job (what a batch writer does in production)."""
        config = bigquery.LoadJobConfig(
            schema=table_defs()[name].schema(),
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        )
        self.client.load_table_from_json(list(rows), self.table(name), job_config=config).result()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in self.client.query(sql).result()]
