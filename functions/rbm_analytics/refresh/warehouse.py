"""BigQuery side of the refresh: the raw mirror, the daily tables, the run log.

    changed rows ──load job (NDJSON)──▶ per-run staging table ──MERGE──▶ mirror
    mirror ──one transaction (DELETE dates; INSERT … SELECT)──▶ daily tables

SQL lives in ``sql/*.sql``. Values travel only as query parameters; the one
thing formatted into the text is the table path, from validated settings.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

from google.cloud import bigquery

from rbm_analytics.core.tables import dataset_path, ensure_tables, table_defs
from rbm_analytics.refresh.reader import MirrorBatch

# How far back a user message's "previous message" may be (docs/contract.md §3).
LOOKBACK_DAYS = 30
# A crashed run's staging table expires by itself.
STAGING_TTL = timedelta(days=1)


# Datasets whose tables this instance has created or found already.
_ENSURED: set[tuple[str, str]] = set()

# Mirror table → its MERGE.
MERGES = {
    "agent_messages": "merge_agent_messages.sql",
    "user_messages": "merge_user_messages.sql",
    "user_events": "merge_user_events.sql",
}


# The mirror's SQL lives beside the refresh; the daily metrics' beside their catalog.
SQL_PACKAGES = ("rbm_analytics.refresh", "rbm_analytics.metrics")


@cache
def _sql_text(name: str) -> str:
    for package in SQL_PACKAGES:
        path = resources.files(package).joinpath("sql", name)
        if path.is_file():
            return path.read_text()
    raise FileNotFoundError(f"no SQL file {name} in {SQL_PACKAGES}")


def sql(name: str, dataset_path: str, **names: str) -> str:
    """The SQL file ``name`` with ``${dataset}`` (and other identifiers) filled in."""
    return string.Template(_sql_text(name)).substitute(dataset=dataset_path, **names)


Parameter = bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter


@dataclass(frozen=True)
class Statement:
    """One query as BigQuery receives it: its text and its (never NULL) parameters."""

    name: str
    sql: str
    parameters: tuple[Parameter, ...]

    def job_config(self, *, dry_run: bool = False) -> bigquery.QueryJobConfig:
        """A dry run also skips the cache, so it reports what a real run would read."""
        if dry_run:
            return bigquery.QueryJobConfig(
                query_parameters=list(self.parameters), dry_run=True, use_query_cache=False
            )
        return bigquery.QueryJobConfig(query_parameters=list(self.parameters))


@dataclass(frozen=True)
class DailyCounts:
    daily_metrics: int
    daily_postbacks: int
    response_samples: int

    @property
    def total(self) -> int:
        return self.daily_metrics + self.daily_postbacks + self.response_samples


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    started_at: datetime
    finished_at: datetime | None
    first_date: date | None
    last_date: date | None
    documents_read: int | None
    rows_written: int | None
    status: str
    error: str | None


# A typed stand-in for an absent value: BigQuery does not accept NULL query
# parameters, so an optional value travels as (placeholder, has_<name> = false).
_PLACEHOLDER: dict[str, Any] = {
    "DATE": date(1970, 1, 1), "INT64": 0, "STRING": "",
    "TIMESTAMP": datetime(1970, 1, 1, tzinfo=UTC),
}  # fmt: skip


def _param(name: str, type_: str, value: Any) -> bigquery.ScalarQueryParameter:
    if value is None:
        raise ValueError(f"query parameter {name} is None: BigQuery does not allow NULL")
    return bigquery.ScalarQueryParameter(name, type_, value)


def _optional(name: str, type_: str, value: Any) -> list[bigquery.ScalarQueryParameter]:
    """``@name`` and ``@has_name``: never a NULL parameter, the SQL writes NULL itself."""
    return [
        _param(name, type_, _PLACEHOLDER[type_] if value is None else value),
        _param(f"has_{name}", "BOOL", value is not None),
    ]


class Warehouse:
    """One BigQuery dataset: tables created on first use, then mirror and daily writes."""

    def __init__(self, client: bigquery.Client, project: str, dataset: str, location: str) -> None:
        self.path = dataset_path(project, dataset)
        self._client = client
        self._project = project
        self._dataset = dataset
        self._location = location

    def ensure(self) -> None:
        """Create the dataset and missing tables, once per instance."""
        key = (self._project, self._dataset)
        if key not in _ENSURED:
            ensure_tables(self._client, self._project, self._dataset, self._location)
            _ENSURED.add(key)

    def run(self, statement: Statement) -> Any:
        """Run ``statement``; its rows."""
        return self._client.query(statement.sql, job_config=statement.job_config()).result()

    def staging_table(self, table: str, run_id: str) -> bigquery.Table:
        """A run's staging table for ``table``: same schema, gone in a day if a run crashes."""
        staging = bigquery.Table(
            f"{self.path}._staging_{table}_{run_id}", schema=table_defs()[table].schema()
        )
        staging.expires = datetime.now(UTC) + STAGING_TTL
        return staging

    def merge_statement(self, table: str, staging: str, dates: Sequence[date]) -> Statement:
        """The MERGE of ``staging`` into ``table``, pruned to the partitions ``dates``."""
        return Statement(
            f"merge {table}",
            sql(MERGES[table], self.path, staging=staging),
            (bigquery.ArrayQueryParameter("dates", "DATE", sorted(dates)),),
        )

    def daily_statement(
        self, start: date, end: date, *, window_days: int, refreshed_at: datetime
    ) -> Statement:
        """The script that replaces the daily tables' rows of ``start … end``."""
        return Statement(
            "replace daily tables",
            sql("replace_daily.sql", self.path),
            (
                _param("start_date", "DATE", start),
                _param("end_date", "DATE", end),
                _param("window_days", "INT64", window_days),
                _param("lookback_days", "INT64", LOOKBACK_DAYS),
                _param("refreshed_at", "TIMESTAMP", refreshed_at),
            ),
        )

    def daily_counts_statement(self, start: date, end: date) -> Statement:
        return Statement(
            "daily counts",
            sql("daily_counts.sql", self.path),
            (_param("start_date", "DATE", start), _param("end_date", "DATE", end)),
        )

    def run_statement(self, run: RunRecord) -> Statement:
        """The refresh_runs row of ``run``."""
        return Statement(
            "record run",
            sql("insert_refresh_run.sql", self.path),
            (
                _param("run_id", "STRING", run.run_id),
                _param("started_at", "TIMESTAMP", run.started_at),
                *_optional("finished_at", "TIMESTAMP", run.finished_at),
                *_optional("first_date", "DATE", run.first_date),
                *_optional("last_date", "DATE", run.last_date),
                *_optional("documents_read", "INT64", run.documents_read),
                *_optional("rows_written", "INT64", run.rows_written),
                _param("status", "STRING", run.status),
                _param("error", "STRING", run.error or ""),
            ),
        )

    # -- mirror ---------------------------------------------------------------
    def upsert_mirror(self, batch: MirrorBatch, run_id: str) -> int:
        """Load ``batch`` into a staging table, MERGE it into the mirror, drop staging."""
        if batch.rows == 0 or batch.min_date is None or batch.max_date is None:
            return 0
        tdef = table_defs()[batch.table]
        staging = self.staging_table(batch.table, run_id)
        self._client.create_table(staging, exists_ok=True)
        # The load job wants a read-mode file object: reopen the temporary file's descriptor.
        batch.file.seek(0)
        try:
            with open(batch.file.fileno(), "rb", closefd=False) as source:
                job = self._client.load_table_from_file(
                    source,
                    staging,
                    job_config=bigquery.LoadJobConfig(
                        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                        schema=tdef.schema(),
                        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                    ),
                )
                job.result()
            self.run(self.merge_statement(batch.table, staging.table_id, sorted(batch.dates)))
        finally:
            self._client.delete_table(staging, not_found_ok=True)
        return batch.rows

    # -- daily tables -----------------------------------------------------------
    def replace_daily(
        self, start: date, end: date, *, window_days: int, refreshed_at: datetime
    ) -> DailyCounts:
        """Recompute the daily tables for ``start … end`` in one transaction."""
        statement = self.daily_statement(
            start, end, window_days=window_days, refreshed_at=refreshed_at
        )
        rows = list(self.run(statement))
        (row,) = rows
        return DailyCounts(
            daily_metrics=int(row["daily_metrics"]),
            daily_postbacks=int(row["daily_postbacks"]),
            response_samples=int(row["response_samples"]),
        )

    def daily_counts(self, start: date, end: date) -> list[dict[str, Any]]:
        """sent, delivered and read per (date, agent) for ``start … end``, sorted."""
        rows = self.run(self.daily_counts_statement(start, end))
        return [dict(row.items()) for row in rows]

    # -- run log ----------------------------------------------------------------
    def record_run(self, run: RunRecord) -> None:
        self.run(self.run_statement(run))
