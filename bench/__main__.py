"""``python -m bench [NAME …] [--smoke]``: run the benchmarks, one JSON line each."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

SUITES = {
    "ingest": "bench.ingest_bench",
    "refresh": "bench.refresh_bench",
    "export": "bench.export_bench",
    "stack": "bench.stack_bench",
    "coldstart": "bench.coldstart_bench",
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*SUITES, []], help="suites (default: all)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks they run")
    args = parser.parse_args()
    if args.smoke:
        os.environ["BENCH_SMOKE"] = "1"
    for name in args.names or list(SUITES):
        print(f"== {name}", file=sys.stderr, flush=True)
        # Log lines the product writes in-process go to stderr; stdout carries
        # only measurement lines.
        with contextlib.redirect_stdout(sys.stderr):
            importlib.import_module(SUITES[name]).run(args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
