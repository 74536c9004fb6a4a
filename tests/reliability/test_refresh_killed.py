"""SIGKILL the refresh process mid-run: the next run's tables equal an uninterrupted run's.

The refresh runs as its own process (``rbm-analytics refresh``, the same code
as the function). It is killed once while mirroring Firestore into BigQuery
and once while recomputing the daily tables; then it runs to the end. The
result is compared, table by table, with a run that was never interrupted.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import time
from datetime import timedelta
from typing import Any

from tests.integration.refresh_support import Traffic, table_rows, utc
from tests.support import REPO_ROOT

AGENTS = ("acme-agent", "beta-agent")
KINDS = ("text", "file", "location", "suggestion_reply", "suggestion_action")
START, END = "2026-03-01", "2026-03-05"
TABLES = (
    "agent_messages", "user_messages", "user_events",
    "daily_metrics", "daily_postbacks", "response_samples",
)  # fmt: skip
# Columns that record when a row was written, not what it says.
WRITE_TIME = {"refreshed_at"}


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


def _snapshot(dataset: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in TABLES:
        rows = [
            tuple(sorted((k, v) for k, v in row.items() if k not in WRITE_TIME))
            for row in table_rows(dataset, table)
        ]
        out[table] = sorted(rows, key=repr)
    return out


def _refresh_process(dataset: str) -> subprocess.Popen[str]:
    env = {**os.environ, "BQ_DATASET": dataset, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [str(REPO_ROOT / ".venv" / "bin" / "rbm-analytics"), "refresh",
         "--start", START, "--end", END],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def _kill_in_phase(dataset: str, phase: str, delay_s: float) -> bool:
    """Run a refresh and SIGKILL it ``delay_s`` after it logs ``phase``; False if it finished."""
    proc = _refresh_process(dataset)
    assert proc.stdout is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            break
        if f'"phase":"{phase}"' in line:
            time.sleep(delay_s)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return proc.returncode == -signal.SIGKILL
    proc.wait(timeout=60)
    return False


def _run_to_end(dataset: str) -> None:
    proc = _refresh_process(dataset)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]


def test_refresh_killed_in_mirror_and_metrics_steps_then_rerun_matches_clean_run(
    ingest_client: Any, bq_dataset: str, bigquery_emulator: Any
) -> None:
    seed = int(os.environ.get("RELIABILITY_SEED", "20260301"))
    print(f"seed {seed}")
    rng = random.Random(seed)
    _traffic(ingest_client, rng)

    clean = bq_dataset
    _run_to_end(clean)
    expected = _snapshot(clean)
    assert expected["daily_metrics"], "the clean run wrote no daily metrics"

    # A dataset of its own has its own watermark: its first run reads everything.
    killed = f"{clean}_killed"
    kills = [
        _kill_in_phase(killed, "mirror", rng.uniform(0.0, 0.3)),
        _kill_in_phase(killed, "metrics", rng.uniform(0.0, 0.3)),
    ]
    print(f"killed in mirror step: {kills[0]}, in metrics step: {kills[1]}")
    assert any(kills), "the refresh finished before it could be killed"
    _run_to_end(killed)
    assert _snapshot(killed) == expected
