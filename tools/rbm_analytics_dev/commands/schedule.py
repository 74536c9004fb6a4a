"""``rbm-analytics schedule``: the morning refresh's Cloud Scheduler job.

``status`` shows the schedule, time zone, state, next run, and the last
attempt with its result; ``run`` starts the refresh now; ``pause`` and
``resume`` stop and restart the schedule. Exit 0 on success, 1 when the job
is missing or the call fails (the message names the job).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from rbm_analytics.core.config import get_settings
from rbm_analytics.core.errors import ConfigError

from rbm_analytics_dev import cloud_scheduler as scheduler

EPILOG = f"""examples:
  rbm-analytics schedule status
  rbm-analytics schedule run                       # refresh now (today's dates)
  rbm-analytics schedule pause
  rbm-analytics schedule resume
  rbm-analytics schedule status --job my-refresh --location europe-west1 --project my-proj

defaults: --job {scheduler.DEFAULT_JOB}, --location {scheduler.DEFAULT_LOCATION},
--project $GOOGLE_CLOUD_PROJECT (as infra/ deploys them).
"""

ACTIONS = ("status", "run", "pause", "resume")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "schedule",
        help="show, run, pause or resume the morning refresh job",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=ACTIONS, help="what to do with the job")
    parser.add_argument("--job", default=scheduler.DEFAULT_JOB, help="job id or full name")
    parser.add_argument("--location", default=scheduler.DEFAULT_LOCATION, help="job region")
    parser.add_argument("--project", help="project id (default: GOOGLE_CLOUD_PROJECT)")
    parser.set_defaults(func=main)


def _when(value: datetime | None, missing: str) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else missing


def render(status: scheduler.JobStatus) -> str:
    """The job as an operator reads it, one fact per line."""
    paused = status.state != "ENABLED"
    lines = [
        f"job:           {status.name}",
        f"target:        {status.target or '-'}",
        f"schedule:      {status.schedule} ({status.time_zone})",
        f"state:         {status.state}",
        f"next run:      {_when(status.next_run, 'none (paused)' if paused else 'not scheduled')}",
        f"last attempt:  {_when(status.last_attempt, 'never')}",
        f"last result:   {status.last_status}",
    ]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    try:
        project = args.project or get_settings().project
        ref = scheduler.JobRef.parse(args.job, args.location, project)
        client = scheduler.Scheduler(scheduler.make_client())
        status = getattr(client, args.action)(ref)
    except ConfigError as exc:
        print(f"rbm-analytics schedule: {exc.message}; pass --project", file=sys.stderr)
        return 1
    except scheduler.SchedulerError as exc:
        print(f"rbm-analytics schedule {args.action}: {exc}", file=sys.stderr)
        return 1
    headline = {
        "status": None,
        "run": f"Started {ref.job}: the refresh is running; "
        "'rbm-analytics schedule status' shows its result once it finishes.",
        "pause": f"Paused {ref.job}: no morning refresh until 'rbm-analytics schedule resume'.",
        "resume": f"Resumed {ref.job}.",
    }[args.action]
    if headline:
        print(headline)
    print(render(status))
    return 0
