"""``rbm-analytics``: the command line for operators and developers.

Each subcommand lives in ``rbm_analytics_dev.commands.<name>`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` — a callable
taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rbm_analytics.core.errors import DomainError
from rbm_analytics.web import status_of

# Subcommand modules, in the order --help lists them.
COMMANDS: tuple[str, ...] = (
    "init",
    "serve",
    "simulate",
    "refresh",
    "backfill-shards",
    "export",
    "schedule",
    "looker",
)

EXIT_USAGE = 2
EXIT_FAILED = 1

EPILOG = """\
examples:
  rbm-analytics init                                 # guided first deploy to Google Cloud
  rbm-analytics serve                                # the whole system locally ('make run')
  rbm-analytics simulate --days 7 --truth truth.json # traffic into the local stack
  rbm-analytics refresh --start 2026-01-01 --end 2026-01-31
  rbm-analytics schedule status
  rbm-analytics looker-link --project my-project --dataset rbm_analytics

exit codes: 0 done, 1 the operation failed (the message says why), 2 bad arguments.
Run 'rbm-analytics COMMAND --help' for a command's options and examples.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rbm-analytics",
        description="Analytics for RCS Business Messaging agents on Google Cloud.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        # A command's module is its name as an identifier (backfill-shards: backfill_shards).
        module = name.replace("-", "_")
        importlib.import_module(f"rbm_analytics_dev.commands.{module}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE
    try:
        code: int = args.func(args)
    except DomainError as exc:
        print(f"rbm-analytics {args.command}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE if status_of(exc) < 500 else EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
