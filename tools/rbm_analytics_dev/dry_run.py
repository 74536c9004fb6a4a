"""BigQuery dry runs: what each statement of a refresh or an export would scan.

A dry run (``QueryJobConfig(dry_run=True, use_query_cache=False)``) validates a
statement and reports the bytes it would process, without running it and
without cost. The statements are the production code's own (``Warehouse``'s
and the export's query builder), with the same parameters.

The local BigQuery emulator validates statements but answers every dry run
with 0 bytes; the report says so instead of printing zeros as estimates.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from google.cloud import bigquery
from rbm_analytics.core.tables import MIRROR_TABLES
from rbm_analytics.refresh.warehouse import RunRecord, Statement, Warehouse

EMULATOR_NOTE = (
    "note: BIGQUERY_EMULATOR_HOST is set. The local emulator checks each statement but "
    "answers every dry run with 0 bytes, so these are not estimates: run against a real "
    "project (BIGQUERY_EMULATOR_HOST unset) for BigQuery's numbers."
)


@dataclass(frozen=True)
class Estimate:
    name: str
    bytes: int | None  # None: BigQuery reported no figure


def split_script(statement: Statement) -> list[Statement]:
    """A multi-statement script as its statements (transaction control left out).

    Each is dry-run on its own: a script's dry run validates it but does not
    say what each statement reads.
    """
    code = re.sub(r"--[^\n]*", "", statement.sql)
    parts = [p.strip() for p in re.split(r";\s*\n", code) if p.strip()]
    out = []
    for part in parts:
        if re.fullmatch(r"(BEGIN|COMMIT)( TRANSACTION)?;?", part):
            continue
        verb = part.split()[0]
        table = re.search(r"`[^`]*\.(\w+)`", part)
        what = f"{verb} {table.group(1)}" if table and verb != "SELECT" else f"{verb} row counts"
        out.append(Statement(f"{statement.name}: {what}", part, statement.parameters))
    return out


def dry_run(client: bigquery.Client, statements: Sequence[Statement]) -> list[Estimate]:
    """Each statement's bytes processed, as BigQuery's dry run reports them."""
    out = []
    for st in statements:
        job = client.query(st.sql, job_config=st.job_config(dry_run=True))
        out.append(Estimate(st.name, job.total_bytes_processed))
    return out


@contextmanager
def refresh_statements(
    warehouse: Warehouse,
    client: bigquery.Client,
    start: date,
    end: date,
    *,
    run_date: date | None,
    window_days: int,
) -> Iterator[list[Statement]]:
    """Every statement a refresh of ``start … end`` sends, in order.

    The MERGEs read from a run's staging table, so each gets an empty one
    (created on entry, deleted on exit, as a real run does), and @dates = the
    recomputed dates and the run date: what a morning's changed documents
    usually carry (a late receipt adds its own message's date).
    """
    now = datetime.now().astimezone()
    staged = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    if run_date is not None:
        staged.append(run_date)
    run_id = f"dryrun{uuid.uuid4().hex[:12]}"
    stagings = [warehouse.staging_table(table, run_id) for table in MIRROR_TABLES]
    try:
        statements = []
        for table, staging in zip(MIRROR_TABLES, stagings, strict=True):
            client.create_table(staging, exists_ok=True)
            statements.append(warehouse.merge_statement(table, staging.table_id, staged))
        daily = warehouse.daily_statement(start, end, window_days=window_days, refreshed_at=now)
        statements += split_script(daily)
        statements.append(warehouse.daily_counts_statement(start, end))
        run = RunRecord(run_id, now, now, start, end, 0, 0, "succeeded", None)
        statements.append(warehouse.run_statement(run))
        yield statements
    finally:
        for staging in stagings:
            client.delete_table(staging, not_found_ok=True)


def human(n: int) -> str:
    """Bytes in decimal units, as BigQuery bills them."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 1000 or unit == "PB":
            break
    return f"{value:,.1f} {unit}"


def report(title: str, estimates: Sequence[Estimate]) -> str:
    """The printed table: one line per statement, then the total (decimal units, as billed)."""
    width = max(len(e.name) for e in estimates)
    lines = [title]
    for e in estimates:
        size = "no figure" if e.bytes is None else f"{human(e.bytes)} ({e.bytes:,} bytes)"
        lines.append(f"  {e.name:<{width}}  {size}")
    total = sum(e.bytes or 0 for e in estimates)
    lines.append(f"  {'total':<{width}}  {human(total)} ({total:,} bytes)")
    if os.environ.get("BIGQUERY_EMULATOR_HOST"):
        lines.append(EMULATOR_NOTE)
    return "\n".join(lines)
