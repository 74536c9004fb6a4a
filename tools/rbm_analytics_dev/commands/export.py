"""``rbm-analytics export``: the export function's CSV or JSON, from the command line.

Runs the same query and encoding as ``GET /`` of the ``export`` function
against whatever ``GOOGLE_CLOUD_PROJECT`` / ``BQ_DATASET`` / emulator host the
environment names, and streams the rows to stdout or a file. A bad option
exits 2 with the same message the function's 400 carries; a BigQuery failure
exits 1. With ``--dry-run`` BigQuery dry-runs the export's query instead and
the bytes it would scan are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import IO, Any

from google.api_core.exceptions import GoogleAPICallError
from rbm_analytics.core import clients
from rbm_analytics.core.config import get_settings
from rbm_analytics.core.timeutil import today_utc
from rbm_analytics.export.params import ExportParams, parse_export_params
from rbm_analytics.export.query import METRICS, StatusClock, build_export_query
from rbm_analytics.export.routes import export_chunks
from rbm_analytics.refresh.warehouse import Statement

from rbm_analytics_dev import dry_run

EPILOG = f"""examples:
  rbm-analytics export                                   # last 30 days, sent,delivered,read
  rbm-analytics export --start 2026-01-01 --end 2026-03-31 --scale week \\
      --metrics sent,read,read_rate --output q1.csv
  rbm-analytics export --agent acme-agent --format json | jq '.[0]'
  rbm-analytics export --start 2025-01-01 --end 2025-12-31 --scale month --dry-run

metrics: {", ".join(METRICS)}
"""

_OPTIONS = ("start", "end", "scale", "metrics", "agent", "format", "status", "total")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "export",
        help="write daily/weekly/monthly metrics from BigQuery as CSV or JSON",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--start", metavar="YYYY-MM-DD", help="first date (default: end - 29)")
    parser.add_argument("--end", metavar="YYYY-MM-DD", help="last date (default: yesterday, UTC)")
    parser.add_argument("--scale", metavar="day|week|month", help="period (default: day)")
    parser.add_argument(
        "--metrics",
        metavar="NAME,...",
        help="columns after date,agent_id (default: sent,delivered,read)",
    )
    parser.add_argument("--agent", metavar="ID", help="one agent (default: every agent with rows)")
    parser.add_argument("--format", metavar="csv|json", help="output format (default: csv)")
    parser.add_argument(
        "--status",
        action="store_const",
        const="1",
        help="add a status column: partial (today), provisional (can still grow), final",
    )
    parser.add_argument(
        "--total",
        action="store_const",
        const="1",
        help="add a row per period for agent '*': every agent together",
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the bytes the export's query would scan; export nothing",
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    query = {name: getattr(args, name) for name in _OPTIONS if getattr(args, name) is not None}
    # Validation first: a bad option must not create or truncate the output file.
    params = parse_export_params(query, today_utc())
    if args.dry_run:
        return _dry_run(params)
    chunks = export_chunks(params, get_settings(), clients.bigquery_client)
    if args.output is None:
        _write(chunks, sys.stdout.buffer)
        return 0
    target = Path(args.output)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("wb") as out:
            _write(chunks, out)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    print(f"rbm-analytics export: wrote {target}", file=sys.stderr)
    return 0


def _write(chunks: Any, out: IO[bytes]) -> None:
    for chunk in chunks:
        out.write(chunk)
    out.flush()


def _dry_run(params: ExportParams) -> int:
    settings = get_settings()
    query = build_export_query(
        settings,
        start=params.start,
        end=params.end,
        scale=params.scale,
        metrics=params.metrics,
        agent=params.agent,
        status=StatusClock(today_utc(), settings.backfill_days) if params.status else None,
        total=params.total,
    )
    statement = Statement("export query", query.sql, query.parameters)
    try:
        estimates = dry_run.dry_run(clients.bigquery_client(), [statement])
    except GoogleAPICallError as exc:
        print(f"rbm-analytics export: dry run failed: {exc.message}", file=sys.stderr)
        return 1
    title = (
        f"dry run of an export of {params.start} … {params.end} by {params.scale} "
        f"({', '.join(params.metrics)}): bytes the query would scan"
    )
    print(dry_run.report(title, estimates))
    return 0
