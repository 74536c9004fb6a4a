"""``rbm-analytics serve``: the whole system locally, on the real emulators."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from types import FrameType

from rbm_analytics_dev.local.emulators import PrerequisiteMissing
from rbm_analytics_dev.local.job import DEFAULT_TASKS
from rbm_analytics_dev.local.stack import (
    DEFAULT_PORTS,
    DEMO_DAYS,
    DEMO_USERS,
    ENV_PREFIX,
    TASKS_ENV,
    StackConfig,
    StackError,
    port_env,
    run_stack,
)

PORTS_TABLE = "\n".join(
    f"  --{name.replace('_', '-') + '-port':<20} {port_env(name):<30} {port}"
    for name, port in DEFAULT_PORTS.items()
)
EPILOG = f"""\
Starts the Firestore emulator, the BigQuery emulator, the three functions
(ingest, refresh, export), a local Cloud Scheduler stand-in and a demo bot on
loopback, and prints what is where. The bot plays the agent's own webhook:
ingest relays every verified webhook event to it, as it would to your bot.
As in the cloud, the scheduler starts the morning refresh as a job of N
tasks (N processes of python -m rbm_analytics.refresh.job, one execution);
the refresh function stays for backfills. On the first start with empty
storage it seeds two weeks of simulated traffic and runs the refresh job on
them, so the Analytics page has numbers at once. Data stays in
the data directory across restarts; Ctrl-C or SIGTERM stops everything it
started.

Ports (flag / environment variable / default):
{PORTS_TABLE}
Also: {ENV_PREFIX}DATA_DIR (default .data), {ENV_PREFIX}SCHEDULE (default "0 6 * * *"),
{TASKS_ENV} (default {DEFAULT_TASKS}, as infra/'s refresh_tasks).

examples:
  rbm-analytics serve                      # what 'make run' runs
  rbm-analytics serve --no-demo            # start empty ('make run DEMO=0')
  rbm-analytics serve --ingest-port 18080 --data-dir /tmp/rbm-data
  rbm-analytics serve --schedule '*/15 * * * *'   # refresh every 15 minutes
  rbm-analytics serve --refresh-tasks 2    # the morning job as 2 tasks

exit codes: 0 stopped cleanly, 1 could not start (the message says why).
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the whole system locally (emulators, functions, scheduler)",
        description="Run the whole system locally on the real emulators.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-dir", type=Path, help="where data persists (default: .data)")
    p.add_argument("--no-demo", action="store_true", help="do not seed demo traffic")
    p.add_argument(
        "--no-bot", action="store_true",
        help="no demo bot: ingest stores events without relaying them",
    )  # fmt: skip
    p.add_argument(
        "--demo-users", type=int, default=DEMO_USERS, metavar="N",
        help=f"users in the demo traffic (default {DEMO_USERS})",
    )  # fmt: skip
    p.add_argument(
        "--demo-days", type=int, default=DEMO_DAYS, metavar="D",
        help=f"days of demo traffic (default {DEMO_DAYS})",
    )  # fmt: skip
    p.add_argument("--schedule", help='refresh cron in UTC (default "0 6 * * *")')
    p.add_argument(
        "--refresh-tasks", type=int, metavar="N",
        help=f"tasks of the scheduled refresh job (default {DEFAULT_TASKS}, or ${TASKS_ENV})",
    )  # fmt: skip
    p.add_argument("--source", type=Path, help="functions source (default: functions/main.py)")
    for name, port in DEFAULT_PORTS.items():
        p.add_argument(
            f"--{name.replace('_', '-')}-port",
            type=int,
            metavar="PORT",
            dest=name,
            help=f"default {port}, or ${port_env(name)}",
        )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    err = sys.stderr
    try:
        config = StackConfig.from_env()
    except StackError as exc:
        print(f"rbm-analytics serve: {exc}", file=sys.stderr)
        return 1
    if not 1 <= args.demo_users <= 100_000 or not 1 <= args.demo_days <= 365:
        print("rbm-analytics serve: --demo-users must be 1-100000, --demo-days 1-365", file=err)
        return 2
    config = replace(
        config.with_ports(**{n: getattr(args, n) for n in DEFAULT_PORTS}),
        demo=not args.no_demo,
        bot=not args.no_bot,
        demo_users=args.demo_users,
        demo_days=args.demo_days,
        data_dir=args.data_dir.resolve() if args.data_dir else config.data_dir,
        schedule=args.schedule or config.schedule,
        refresh_tasks=config.refresh_tasks if args.refresh_tasks is None else args.refresh_tasks,
        source=args.source.resolve() if args.source else config.source,
    )

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            return  # already stopping: let the clean-up finish
        stopping.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def wait() -> None:
        while not stopping.wait(3600):
            pass

    try:
        run_stack(config, wait=wait, stopping=stopping)
    except KeyboardInterrupt:
        return 0
    except (PrerequisiteMissing, StackError, OSError) as exc:
        print(f"rbm-analytics serve: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
