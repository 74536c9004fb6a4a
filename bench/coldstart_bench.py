"""Cold-start imports: what each function loads before it can answer its first request.

Each function's entry point imports only its own package, and a client
library only when its first client is built. The baseline, measured in the
same run, is what every function paid before the layout by deployable: all
three packages and both client libraries. Two figures per function, each in
fresh interpreters: the modules loaded (exact), and the CPU time the imports
take (user + system time of the child, the median of several runs; CPU time
rather than wall time, since this shared machine's load would swamp it).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys

from .harness import REPO, measurement, note

COMMON = ("functions_framework", "main")
OWN = {
    "ingest": ("rbm_analytics.ingest.routes", "google.cloud.firestore"),
    "export": ("rbm_analytics.export.routes", "google.cloud.bigquery"),
    "refresh": ("rbm_analytics.refresh.routes", "google.cloud.firestore", "google.cloud.bigquery"),
}
EVERYTHING = tuple(dict.fromkeys(m for mods in OWN.values() for m in mods))
CODE = (
    "import importlib, json, sys\n"
    "for m in sys.argv[1:]: importlib.import_module(m)\n"
    "print(json.dumps(len(sys.modules)))"
)


def cold_import(modules: tuple[str, ...]) -> tuple[int, float]:
    """Modules loaded and CPU milliseconds of a fresh interpreter importing ``modules``."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "functions")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-c", CODE, *COMMON, *modules],
        capture_output=True, text=True, env=env, cwd=REPO, check=True, timeout=120,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return int(out.stdout.strip().splitlines()[-1]), cpu_s * 1000


def _median(modules: tuple[str, ...], runs: int) -> tuple[int, float]:
    results = [cold_import(modules) for _ in range(runs)]
    return results[0][0], statistics.median(ms for _, ms in results)


def run(smoke: bool) -> None:
    runs = 3 if smoke else 9
    all_modules, all_ms = _median(EVERYTHING, runs)
    note(f"all three packages and both client libraries: {all_modules} modules, {all_ms:.0f} ms")
    for name, modules in OWN.items():
        count, ms = _median(modules, runs)
        note(f"{name}: {count} modules, {ms:.0f} ms CPU")
        target = "fewer than all packages and libraries" if name != "refresh" else "reported"
        measurement(
            f"coldstart.{name}_modules", count, "modules", all_modules, target,
            count < all_modules if name != "refresh" else None,
        )  # fmt: skip
        measurement(
            f"coldstart.{name}_import_cpu_ms", ms, "ms", all_ms, "reported", None,
        )  # fmt: skip
