"""Known rows for the export tests, loaded into the BigQuery emulator."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from google.cloud import bigquery
from rbm_analytics.core.tables import table_defs
from rbm_analytics.export.query import METRICS, Kind

REFRESHED_AT = "2026-03-01T06:00:00.000000Z"


def daily(day: str | date, agent: str, **values: Any) -> dict[str, Any]:
    """A daily_metrics row: counts default to 0, durations to NULL.

    An average given with its sample count also gets the integer sum of
    milliseconds the refresh stores beside it (what weeks and months divide).
    """
    row: dict[str, Any] = {"date": str(day), "agent_id": agent, "refreshed_at": REFRESHED_AT}
    for name, metric in METRICS.items():
        if metric.kind is Kind.COUNT:
            row[name] = 0
    unknown = set(values) - set(table_defs()["daily_metrics"].columns)
    assert not unknown, f"not daily_metrics columns: {unknown}"
    row.update(values)
    for metric in METRICS.values():
        if metric.kind is Kind.AVERAGE and metric.sum_ms not in values:
            avg, n = row.get(metric.name), row.get(str(metric.weight)) or 0
            row[str(metric.sum_ms)] = 0 if avg is None else round(avg * 1000 * n)
    return row


def sample(day: str | date, agent: str, metric: str, seconds: float) -> dict[str, Any]:
    """A response_samples row; ``seconds`` must be whole milliseconds."""
    ms = round(seconds * 1000)
    assert ms / 1000 == seconds, f"{seconds} is not whole milliseconds"
    return {"date": str(day), "agent_id": agent, "metric": metric, "duration_ms": ms,
            "seconds": ms / 1000}  # fmt: skip


def nearest_rank(values: Sequence[float], p: int) -> float:
    """The ⌈p·n/100⌉-th smallest value (docs/contract.md §3's percentile)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p * len(ordered) / 100))
    return ordered[rank - 1]


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
