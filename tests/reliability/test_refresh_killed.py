"""SIGKILL the refresh process mid-run: the next run's tables equal an uninterrupted run's.

The refresh runs as its own process (``rbm-analytics refresh``, the same code
as the function). With a backlog of more changed documents than fit in one
chunk (the chunk size lowered), it is killed between two chunks, again in the
middle of a chunk, and once while recomputing the daily tables; then it runs
to the end. The result is compared, table by table, with a run that was never
interrupted (and read everything in one chunk per collection). Finished chunks
are not read again: the last run reads less than the whole backlog.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import time
from datetime import timedelta
from typing import Any

from rbm_analytics.core import clients

from tests.integration.refresh_support import (
    Traffic,
    latest_runs,
    table_snapshot,
    utc,
)
from tests.support import REPO_ROOT

AGENTS = ("acme-agent", "beta-agent")
KINDS = ("text", "file", "location", "suggestion_reply", "suggestion_action")
START, END = "2026-03-01", "2026-03-05"


def _traffic(client: Any, rng: random.Random) -> None:
    t = Traffic(client)
    sends = []
    for i in range(240):
        agent, phone = AGENTS[i % 2], f"+1555100{i % 40:04d}"
        at = utc(2026, 3, 1) + timedelta(seconds=rng.randrange(5 * 86400))
        sends.append((f"m{i}", agent, phone, at))
    t.agent_messages(sends)
    for mid, agent, phone, at in sends:
        if rng.random() < 0.9:
            t.receipt("DELIVERED", mid, agent, phone, at + timedelta(seconds=rng.randrange(600)))
        if rng.random() < 0.6:
            read = at + timedelta(seconds=rng.randrange(12 * 86400))
            t.receipt("READ", mid, agent, phone, read)
            if rng.random() < 0.5:
                kind = rng.choice(KINDS)
                reply = read + timedelta(seconds=rng.randrange(1, 3600))
                t.user_message(f"u-{mid}", agent, phone, reply, kind, postback=f"pb{i % 3}")
        if rng.random() < 0.3:
            t.typing(f"typing-{mid}", agent, phone, at + timedelta(seconds=30))


OVERLAP_S = 0.5
# Chunk size of the interrupted runs: the backlog takes several chunks per collection.
SMALL_CHUNK = 25


def _refresh_process(dataset: str, chunk: int | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "BQ_DATASET": dataset, "PYTHONUNBUFFERED": "1"}
    # The backlog is older than the overlap, so a saved cursor is exact (see watermark).
    env["REFRESH_OVERLAP_SECONDS"] = str(OVERLAP_S)
    if chunk is not None:
        env["REFRESH_CHUNK_DOCUMENTS"] = str(chunk)
    return subprocess.Popen(
        [str(REPO_ROOT / ".venv" / "bin" / "rbm-analytics"), "refresh",
         "--start", START, "--end", END],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def _kill_in_phase(
    dataset: str, phase: str, delay_s: float, *, nth: int = 1, chunk: int | None = None
) -> bool:
    """Run a refresh and SIGKILL it ``delay_s`` after it logs ``phase`` the ``nth`` time;
    False if it finished first."""
    proc = _refresh_process(dataset, chunk)
    assert proc.stdout is not None
    deadline = time.monotonic() + 300
    seen = 0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            break
        if f'"phase":"{phase}"' in line:
            seen += 1
            if seen < nth:
                continue
            time.sleep(delay_s)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            _wait_for_orphaned_jobs()
            return proc.returncode == -signal.SIGKILL
    proc.wait(timeout=60)
    return False


def _wait_for_orphaned_jobs(timeout_s: float = 120) -> None:
    """Wait until no query or load job of the killed process is still running.

    Killing the process does not stop a job it had started: BigQuery (and the
    emulator) run it to the end. On BigQuery, a rerun's MERGE or transaction
    that overlapped it would conflict, and the later one would be retried or
    fail; the emulator applies both instead. So the next run starts once the
    last job of the killed one has ended, as it would on BigQuery.
    """
    client = clients.bigquery_client()
    deadline = time.monotonic() + timeout_s
    while any(True for _ in client.list_jobs(state_filter="running")) or any(
        True for _ in client.list_jobs(state_filter="pending")
    ):
        assert time.monotonic() < deadline, "the killed refresh's jobs never finished"
        time.sleep(0.2)


def _run_to_end(dataset: str, chunk: int | None = None) -> dict[str, Any]:
    proc = _refresh_process(dataset, chunk)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    summary: dict[str, Any] = json.loads(out[out.index("{\n") :])
    return summary


def test_backlog_refresh_killed_between_and_in_chunks_then_rerun_matches_clean_run(
    ingest_client: Any, bq_dataset: str, bigquery_emulator: Any, soak: bool
) -> None:
    seed = int(os.environ.get("RELIABILITY_SEED", "20260301"))
    print(f"seed {seed}")
    rng = random.Random(seed)
    _traffic(ingest_client, rng)
    time.sleep(OVERLAP_S + 0.5)

    clean = bq_dataset
    clean_summary = _run_to_end(clean)
    expected = table_snapshot(clean)
    assert expected["daily_metrics"], "the clean run wrote no daily metrics"
    backlog = clean_summary["documents_read"]
    assert clean_summary["chunks"] == 3  # one chunk per collection
    assert backlog > 4 * SMALL_CHUNK

    # A dataset of its own has its own cursors: its first run reads everything.
    killed = f"{clean}_killed"
    plan = [
        ("chunk", 2, 0.0),  # right after the second chunk's cursor was saved
        ("chunk", 2, rng.uniform(0.2, 0.8)),  # while a later chunk is read or merged
        ("metrics", 1, rng.uniform(0.0, 0.3)),  # while the daily tables are recomputed
    ]
    if soak:
        plan[2:2] = [("chunk", rng.randint(1, 3), rng.uniform(0.0, 1.5)) for _ in range(6)]
    kills = [
        _kill_in_phase(killed, phase, delay, nth=nth, chunk=SMALL_CHUNK)
        for phase, nth, delay in plan
    ]
    print(f"kills (phase, nth, delay) -> killed: {list(zip(plan, kills, strict=True))}")
    assert all(kills[:2]), "the refresh finished before it could be killed between chunks"
    final = _run_to_end(killed, SMALL_CHUNK)
    assert table_snapshot(killed) == expected
    # Finished chunks were not read again (at most the chunks in flight were).
    assert final["documents_read"] < backlog - 2 * SMALL_CHUNK
    # A run killed in its mirror step stays visible in refresh_runs as "running".
    statuses = [r["status"] for r in latest_runs(killed)]
    assert statuses[:2] == ["running", "running"], statuses
    assert statuses[-1] == "succeeded", statuses
