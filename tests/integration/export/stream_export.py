"""Stream one export through the real handler in a fresh process and report its cost.

    python -m tests.integration.export.stream_export START END METRICS

Prints one JSON object: rows, bytes, seconds and the process's peak RSS
before and after the export (the environment points at the emulator).
"""

from __future__ import annotations

import json
import resource
import sys
import time

import functions_framework

from tests.support import REPO_ROOT


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def main(start: str, end: str, metrics: str) -> None:
    app = functions_framework.create_app("export", str(REPO_ROOT / "functions" / "main.py"))
    client = app.test_client()
    query = {"start": start, "end": end, "metrics": metrics}
    # Warm-up on an empty range: imports, client, connection pool.
    client.get("/", query_string={**query, "start": end, "end": end}).close()
    peak_before = _peak_rss_bytes()
    started = time.perf_counter()
    resp = client.get("/", query_string=query, buffered=False)
    if resp.status_code != 200:
        raise SystemExit(f"status {resp.status_code}: {resp.get_data()[:500]!r}")
    lines = size = 0
    for chunk in resp.response:
        lines += chunk.count(b"\r\n")
        size += len(chunk)
    resp.close()
    seconds = time.perf_counter() - started
    report = {
        "rows": lines - 1,
        "bytes": size,
        "seconds": seconds,
        "peak_rss_before": peak_before,
        "peak_rss_after": _peak_rss_bytes(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:4])
