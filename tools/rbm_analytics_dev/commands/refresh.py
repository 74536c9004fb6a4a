"""``rbm-analytics refresh``: run the morning refresh or a backfill by hand.

Runs the same code as the ``refresh`` function against whatever
``GOOGLE_CLOUD_PROJECT`` / ``BQ_DATASET`` / emulator hosts the environment names,
prints the JSON summary and exits 0; bad dates exit 2, a failed run exits 1,
and a run that spent its time budget still catching up exits 75 (EX_TEMPFAIL:
its progress is saved, run it again).
With ``--tasks N`` the refresh runs as the deployed morning job does: N
local processes ``python -m rbm_analytics.refresh.job``, task i of N each
(``CLOUD_RUN_TASK_INDEX`` / ``CLOUD_RUN_TASK_COUNT``, one shared
``CLOUD_RUN_EXECUTION``), each mirroring its share of the change streams; the
last to finish recomputes the daily tables. It waits for all of them, prints
each task's summary line and a total, and exits 0 only if every task did.
With ``--dry-run`` nothing is written: BigQuery dry-runs every statement the
refresh would send and the bytes each would scan are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.api_core.exceptions import GoogleAPICallError
from rbm_analytics.core import clients
from rbm_analytics.core.config import Settings, get_settings
from rbm_analytics.core.timeutil import parse_date, today_utc
from rbm_analytics.refresh import routes as refresh_core
from rbm_analytics.refresh.plan import RefreshPlan, plan
from rbm_analytics.refresh.warehouse import Warehouse

from rbm_analytics_dev import dry_run
from rbm_analytics_dev.local.job import MAX_TASKS, LocalJob, job_args

EXIT_INCOMPLETE = 75

EPILOG = """examples:
  rbm-analytics refresh                          # like the scheduler: today's run, R-8 … R-1
  rbm-analytics refresh --run-date 2026-01-10    # recompute 2026-01-02 … 2026-01-09
  rbm-analytics refresh --start 2025-12-01 --end 2025-12-31   # backfill December
  rbm-analytics refresh --tasks 4                # as the Cloud Run job: 4 parallel tasks
  rbm-analytics refresh --dry-run                # bytes each statement of this morning would scan
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "refresh",
        help="recompute the BigQuery mirror and daily tables",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run-date", metavar="YYYY-MM-DD", help="recompute the W days before it")
    parser.add_argument("--start", metavar="YYYY-MM-DD", help="first date of a backfill")
    parser.add_argument("--end", metavar="YYYY-MM-DD", help="last date of a backfill (inclusive)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the bytes each BigQuery statement would scan; write nothing",
    )
    parser.add_argument(
        "--tasks",
        type=int,
        metavar="N",
        help="run as the refresh job: N parallel task processes (local Cloud Run job)",
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    settings = get_settings()
    refresh_plan = plan(
        today=today_utc(),
        window_days=settings.backfill_days,
        run_date=None if args.run_date is None else parse_date(args.run_date, "--run-date"),
        start=None if args.start is None else parse_date(args.start, "--start"),
        end=None if args.end is None else parse_date(args.end, "--end"),
        mirror_retention_days=settings.mirror_retention_days,
    )
    if args.dry_run:
        return _dry_run(refresh_plan, settings)
    if args.tasks is not None:
        return _tasks(args, args.tasks, settings)
    try:
        summary = refresh_core.run(refresh_plan, settings, refresh_core.default_clients())
    except Exception as exc:
        print(f"rbm-analytics refresh: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return EXIT_INCOMPLETE if summary["status"] == refresh_core.INCOMPLETE else 0


def _dry_run(refresh_plan: RefreshPlan, settings: Settings) -> int:
    client = clients.bigquery_client()
    warehouse = Warehouse(client, settings.project, settings.bq_dataset, settings.bq_location)
    try:
        with dry_run.refresh_statements(
            warehouse,
            client,
            refresh_plan.start,
            refresh_plan.end,
            run_date=refresh_plan.run_date,
            window_days=settings.backfill_days,
        ) as statements:
            estimates = dry_run.dry_run(client, statements)
    except GoogleAPICallError as exc:
        print(f"rbm-analytics refresh: dry run failed: {exc.message}", file=sys.stderr)
        return 1
    title = (
        f"dry run of a refresh of {refresh_plan.start} … {refresh_plan.end} "
        f"in {warehouse.path}: bytes each statement would scan"
    )
    print(dry_run.report(title, estimates))
    return 0


def _tasks(args: argparse.Namespace, count: int, settings: Settings) -> int:
    """Run the refresh job's ``count`` tasks as local processes; 0 when all succeeded."""
    if not 1 <= count <= MAX_TASKS:
        print(f"rbm-analytics refresh: --tasks must be 1 to {MAX_TASKS}", file=sys.stderr)
        return 2
    # The deployed job finds its tables made by Terraform; here they are made
    # once, up front, rather than by N tasks racing to create the same tables.
    try:
        Warehouse(
            clients.bigquery_client(), settings.project, settings.bq_dataset, settings.bq_location
        ).ensure()
    except GoogleAPICallError as exc:
        print(f"rbm-analytics refresh: cannot create the tables: {exc.message}", file=sys.stderr)
        return 1
    dates = {"run_date": args.run_date, "start": args.start, "end": args.end}
    try:
        result = LocalJob(count).run(job_args(dates))
    except OSError as exc:
        print(f"rbm-analytics refresh: cannot start the tasks: {exc}", file=sys.stderr)
        return 1
    for task in result.failed:
        print(f"rbm-analytics refresh: task {task.index} exited {task.exit_code}:\n"
              f"{task.output[-3000:]}", file=sys.stderr)  # fmt: skip
    print(json.dumps(result.summary(), indent=2, default=str))
    return 0 if result.ok else 1
