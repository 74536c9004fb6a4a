"""Refresh benchmarks: a full first run, then what a morning run costs.

The claim measured: a morning run's Firestore reads and time grow with the
day's changes, not with the size of the history.

    history of H documents ──first refresh (reads all)──▶ BigQuery
    + C changes            ──morning refresh (reads C)──▶ BigQuery
    nothing changed        ──refresh (reads 0)──────────▶ BigQuery

And the refresh job's fan-out: one backlog refreshed by 1, 2 and 4 job
tasks (``rbm-analytics refresh --tasks N``), each into a fresh dataset, for
the same tables, the wall time and each task's own rate; and one task's
memory over 10x the backlog.
"""

from __future__ import annotations

import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Container, Iterable, Iterator
from contextlib import contextmanager, redirect_stdout, suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from google.api_core import retry as gretry
from google.cloud import bigquery
from rbm_analytics.core import clients
from rbm_analytics.core.config import get_settings
from rbm_analytics.core.shards import SHARD_FIELD
from rbm_analytics.core.tables import DAILY_TABLES, MIRROR_TABLES, ensure_tables, table_defs
from rbm_analytics.core.timeutil import datetime_to_us
from rbm_analytics.ingest.records import AgentMessage, Receipt, UserMessage
from rbm_analytics.ingest.store import FirestoreStore
from rbm_analytics.ingest.writes import Committer, DocWrite
from rbm_analytics.refresh import routes as refresh
from rbm_analytics.refresh.plan import plan
from rbm_analytics_dev.local import emulators
from rbm_analytics_dev.local.job import JOB_MODULE

from . import harness
from .harness import PROJECT, measurement, note

OVERLAP_S = 1.0
LAST_DAY = date(2026, 2, 28)
DAYS = 28


@contextmanager
def _bigquery(tmp: Path) -> Iterator[emulators.ManagedProcess]:
    proc = emulators.bigquery_emulator(
        emulators.free_port(), emulators.free_port(), PROJECT, tmp / "bq", log_path=tmp / "bq.log"
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _receipt(
    store: FirestoreStore, mid: str, agent: str, user: str, kind: Any, at: int
) -> DocWrite:
    """A receipt as a blind merge into its message's document, which the seed wrote."""
    return store.receipt_write(Receipt(mid, agent, user, kind, None, at, at))._replace(create=False)


def _traffic(
    store: FirestoreStore, n: int, rng: random.Random, prefix: str
) -> tuple[list[DocWrite], list[DocWrite]]:
    """``n`` agent messages over the month, most read, some answered: (sent writes, the rest)."""
    first = datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, tzinfo=UTC) - timedelta(days=DAYS)
    sent, after = [], []
    for i in range(n):
        user = f"user-{rng.randrange(max(1, n // 5)):06d}"
        agent = f"agent-{i % 3}"
        at = datetime_to_us(first + timedelta(seconds=rng.uniform(0, DAYS * 86400)))
        mid = f"{prefix}m{i}"
        sent.append(store.sent_write(AgentMessage(mid, agent, user, at, "text", None, at)))
        if rng.random() < 0.7:
            read = at + int(rng.uniform(1, 3 * 86400) * 1e6)
            after.append(_receipt(store, mid, agent, user, "READ", read))
            if rng.random() < 0.4:
                reply = read + int(rng.uniform(1, 600) * 1e6)
                msg = UserMessage(f"{prefix}u{i}", agent, user, "text", None, None, reply, reply)
                after.append(store.user_message_write(msg))
    return sent, after


def _write(committer: Committer, docs: list[DocWrite]) -> None:
    retry = gretry.Retry(timeout=60)
    for i in range(0, len(docs), 500):
        committer.commit(docs[i : i + 500], retry, 60)


def _run(run_date: date | None = None) -> tuple[dict[str, Any], float]:
    settings = get_settings()
    started = time.perf_counter()
    if run_date is None:
        p = plan(today=LAST_DAY, window_days=8, start=LAST_DAY - timedelta(days=DAYS), end=LAST_DAY)
    else:
        p = plan(today=run_date, window_days=8, run_date=run_date)
    summary = refresh.run(p, settings, refresh.default_clients())
    return summary, time.perf_counter() - started


@contextmanager
def _emulated() -> Iterator[None]:
    """Both emulators, with this process's settings and clients pointing at them.

    The refresh logs JSON lines to stdout; the bench's stdout is for
    measurements, so the logs are dropped. The environment is restored after.
    """
    saved = dict(os.environ)
    try:
        with redirect_stdout(io.StringIO()), tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            with harness.firestore(tmp) as fs, _bigquery(tmp) as bq:
                os.environ.update(
                    GOOGLE_CLOUD_PROJECT=PROJECT,
                    FIRESTORE_EMULATOR_HOST=fs.host,
                    BIGQUERY_EMULATOR_HOST=bq.host,
                    BQ_DATASET=f"bench_{uuid.uuid4().hex[:8]}",
                    REFRESH_OVERLAP_SECONDS=str(OVERLAP_S),
                )
                clients.reset()
                yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        clients.reset()


def _morning_runs(history: int, changes: int, rng: random.Random) -> tuple[Any, ...]:
    with _emulated():
        committer = Committer(clients.firestore_client())
        store = FirestoreStore(clients.firestore_client(), retention_days=90, deadline_s=30)
        sent, after = _traffic(store, history, rng, "h")
        _write(committer, sent)
        _write(committer, after)
        note(f"history: {len(sent) + len(after)} writes")
        time.sleep(OVERLAP_S + 0.2)

        full, full_s = _run()
        note(f"first refresh: {full['documents_read']} documents in {full_s:.1f}s")
        time.sleep(OVERLAP_S + 0.2)

        new_sent, new_after = _traffic(store, changes, rng, "c")
        _write(committer, new_sent)
        _write(committer, new_after)
        changed_docs = len(new_sent) + sum(1 for d in new_after if d.create)
        time.sleep(OVERLAP_S + 0.2)
        morning, morning_s = _run(run_date=LAST_DAY + timedelta(days=1))
        note(f"morning refresh: {morning['documents_read']} documents in {morning_s:.1f}s")
        time.sleep(OVERLAP_S + 0.2)
        idle, idle_s = _run(run_date=LAST_DAY + timedelta(days=1))
        note(f"unchanged refresh: {idle['documents_read']} documents in {idle_s:.1f}s")

    return full, full_s, morning, morning_s, changed_docs, idle, idle_s


def morning_runs(history: int, changes: int) -> None:
    rng = random.Random(20260228)
    results = _morning_runs(history, changes, rng)
    full, full_s, morning, morning_s, changed_docs, idle, idle_s = results

    measurement(
        "refresh.first_run_documents_per_s",
        full["documents_read"] / full_s,
        "documents/s",
        None,
        f"first run over {full['documents_read']} documents, {DAYS + 1} dates (emulators)",
        None,
    )
    measurement(
        "refresh.morning_run_s",
        morning_s,
        "s",
        full_s,
        f"reads only the {changed_docs} changed documents of "
        f"{full['documents_read'] + changed_docs}; baseline: the first run",
        morning["documents_read"] == changed_docs,
    )
    measurement(
        "refresh.unchanged_run_s",
        idle_s,
        "s",
        full_s,
        "reads 0 documents when nothing changed; baseline: the first run",
        idle["documents_read"] == 0,
    )


# ---------------------------------------------------------------------------
# History scaling: the same morning, with and without 8x more mirrored history
# ---------------------------------------------------------------------------
MORNING = LAST_DAY + timedelta(days=1)
# Older history sits before the recomputed dates' 30-day look-back: the
# recompute of R-8 … R-1 must read its own window whatever happens, so what
# is measured is that nothing older is read again.
HISTORY_FIRST_DAY, HISTORY_DAYS = MORNING - timedelta(days=100), 60


def _day_traffic(store: FirestoreStore, n: int, rng: random.Random) -> list[DocWrite]:
    """``n`` agent messages on LAST_DAY with receipts and replies, as Firestore writes."""
    day = datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, tzinfo=UTC)
    writes: list[DocWrite] = []
    for i in range(n):
        user = f"user-{rng.randrange(max(1, n // 3)):07d}"
        agent = f"agent-{i % 5}"
        at = datetime_to_us(day + timedelta(seconds=rng.uniform(0, 86_000)))
        mid = f"d{i}"
        writes.append(store.sent_write(AgentMessage(mid, agent, user, at, "text", None, at)))
        delivered = at + int(rng.uniform(1, 60) * 1e6)
        writes.append(_receipt(store, mid, agent, user, "DELIVERED", delivered))
        if rng.random() < 0.6:
            read = delivered + int(rng.uniform(1, 3600) * 1e6)
            writes.append(_receipt(store, mid, agent, user, "READ", read))
            if rng.random() < 0.3:
                reply = read + int(rng.uniform(1, 600) * 1e6)
                msg = UserMessage(f"r{i}", agent, user, "text", None, None, reply, reply)
                writes.append(store.user_message_write(msg))
    return writes


def _write_parallel(committer: Committer, docs: list[DocWrite], workers: int = 8) -> None:
    retry = gretry.Retry(timeout=120)
    chunks = [docs[i : i + 500] for i in range(0, len(docs), 500)]
    harness.threaded(lambda i: committer.commit(chunks[i], retry, 120), len(chunks), workers)


def _mirror_history(dataset: str, messages: int) -> None:
    """``messages`` older agent messages (and 0.3 replies each) straight into the mirror."""
    client = clients.bigquery_client()
    ref = f"{PROJECT}.{dataset}"
    params = [
        bigquery.ScalarQueryParameter("n", "INT64", messages),
        bigquery.ScalarQueryParameter("first", "DATE", HISTORY_FIRST_DAY),
        bigquery.ScalarQueryParameter("days", "INT64", HISTORY_DAYS),
    ]
    config = bigquery.QueryJobConfig(query_parameters=params)
    client.query(
        f"""
        INSERT INTO `{ref}.agent_messages`
          (message_id, agent_id, user_key, sent_at, sent_date, content_type, traffic_type,
           delivered_at, read_at, updated_at)
        SELECT CONCAT('h', CAST(i AS STRING)), CONCAT('agent-', CAST(MOD(i, 5) AS STRING)),
          CONCAT('user-', CAST(MOD(i, 40000) AS STRING)), t, DATE(t), 'text', NULL,
          TIMESTAMP_ADD(t, INTERVAL 20 SECOND),
          IF(MOD(i, 10) < 6, TIMESTAMP_ADD(t, INTERVAL 900 SECOND), NULL), t
        FROM (
          SELECT i, TIMESTAMP_ADD(TIMESTAMP(@first),
                                  INTERVAL CAST(MOD(i * 7919, @days * 86400) AS INT64) SECOND) AS t
          FROM UNNEST(GENERATE_ARRAY(1, @n)) AS i)
        """,
        job_config=config,
    ).result()
    client.query(
        f"""
        INSERT INTO `{ref}.user_messages`
          (message_id, agent_id, user_key, event_at, event_date, kind, postback_data, mime_type,
           updated_at)
        SELECT CONCAT('hr', CAST(message_id AS STRING)), agent_id, user_key,
          TIMESTAMP_ADD(read_at, INTERVAL 60 SECOND),
          DATE(TIMESTAMP_ADD(read_at, INTERVAL 60 SECOND)), 'text', NULL, NULL, updated_at
        FROM `{ref}.agent_messages`
        WHERE message_id LIKE 'h%' AND read_at IS NOT NULL
          AND MOD(FARM_FINGERPRINT(message_id), 2) = 0
        """
    ).result()


def history_scaling(changes: int, factor: int) -> None:
    """The morning after a day of ``changes`` agent messages, with and without
    ``factor`` times as many older messages already mirrored."""
    rng = random.Random(20260301)
    with _emulated():
        store = FirestoreStore(clients.firestore_client(), retention_days=90, deadline_s=60)
        writes = _day_traffic(store, changes, rng)
        _write_parallel(Committer(clients.firestore_client()), writes)
        documents = len({(w.collection, w.doc_id) for w in writes})
        note(f"the day: {changes} agent messages, {documents} documents changed")
        results = {}
        for name, history in (("fresh", 0), ("history", factor * changes)):
            # A dataset of its own: its own watermark, so it reads the day's documents.
            os.environ["BQ_DATASET"] = f"bench_{name}_{uuid.uuid4().hex[:6]}"
            clients.reset()
            settings = get_settings()
            ensure_tables(clients.bigquery_client(), PROJECT, settings.bq_dataset, "US")
            if history:
                _mirror_history(settings.bq_dataset, history)
            summary, seconds = results[name] = _run(run_date=MORNING)
            note(
                f"{name}: {history} messages already mirrored, morning run "
                f"{seconds:.1f}s, {summary['documents_read']} read"
            )
    (fresh, fresh_s), (hist, hist_s) = results["fresh"], results["history"]
    measurement(
        "refresh.morning_with_8x_history_s",
        hist_s,
        "s",
        fresh_s,
        f"<= 1.2 x the same morning without history ({changes} messages that day, "
        f"{factor * changes} older mirrored); documents read == documents changed",
        hist_s <= 1.2 * fresh_s and hist["documents_read"] == fresh["documents_read"] == documents,
    )


# ---------------------------------------------------------------------------
# Backlog memory: peak RSS of a refresh over 10x the changed documents
# ---------------------------------------------------------------------------


def _sent_only(store: FirestoreStore, n: int, offset: int, rng: random.Random) -> list[DocWrite]:
    first = datetime(2026, 2, 1, tzinfo=UTC)
    writes = []
    for i in range(offset, offset + n):
        at = datetime_to_us(first + timedelta(seconds=rng.uniform(0, 27 * 86400)))
        msg = AgentMessage(f"b{i}", f"agent-{i % 5}", f"user-{i % 997:04d}", at, "text", None, at)
        writes.append(store.sent_write(msg))
    return writes


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _refresh_cli(
    args: list[str],
    dataset: str,
    extra: dict[str, str],
    watched: Callable[[int, Container[int]], Iterable[int]],
) -> tuple[dict[str, Any], dict[int, float]]:
    """``rbm-analytics refresh ARGS`` in a fresh process, as a user runs it: its JSON
    summary, and the peak resident set (MB) of each process ``watched`` names
    (given the CLI's pid and the pids sampled so far), sampled every 10 ms from
    /proc while it runs."""
    env = {**os.environ, "BQ_DATASET": dataset, **extra}
    cli = str(Path(sys.executable).parent / "rbm-analytics")
    peaks: dict[int, float] = {}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([cli, "refresh", *args], env=env, stdout=out, stderr=err)
        while proc.poll() is None:
            for pid in watched(proc.pid, peaks):
                peaks[pid] = max(peaks.get(pid, 0.0), _rss_mb(pid))
            time.sleep(0.01)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            failed = " ".join(args)
            raise RuntimeError(f"refresh {failed} failed: {err.read().decode()[-3000:]}")
        text = out.read().decode()
    summary: dict[str, Any] = json.loads(text[text.index("{\n") :])
    return summary, peaks


def _run_measured(dataset: str, extra: dict[str, str]) -> tuple[dict[str, Any], float]:
    """One refresh in a fresh process (``rbm-analytics refresh``): its summary and its
    peak resident set (MB)."""
    dates = ["--start", "2026-02-01", "--end", "2026-02-28"]
    summary, peaks = _refresh_cli(dates, dataset, extra, lambda cli, _: (cli,))
    return summary, max(peaks.values(), default=0.0)


def backlog_memory(small: int, chunk: int) -> None:
    """Peak RSS of a fresh refresh process reading ``small`` vs 10 x ``small`` changed
    documents, ``chunk`` documents per chunk (the big run takes 10+ chunks)."""
    rng = random.Random(20260201)
    extra = {"REFRESH_CHUNK_DOCUMENTS": str(chunk), "MIRROR_RETENTION_DAYS": "0"}
    with _emulated():
        store = FirestoreStore(clients.firestore_client(), retention_days=90, deadline_s=60)
        committer = Committer(clients.firestore_client())
        _write_parallel(committer, _sent_only(store, small, 0, rng))
        time.sleep(OVERLAP_S + 0.2)
        one, one_mb = _run_measured(f"bench_small_{uuid.uuid4().hex[:6]}", extra)
        note(f"1x: {one['documents_read']} documents, {one['chunks']} chunks, {one_mb:.1f} MB")
        _write_parallel(committer, _sent_only(store, 9 * small, small, rng))
        time.sleep(OVERLAP_S + 0.2)
        ten, ten_mb = _run_measured(f"bench_big_{uuid.uuid4().hex[:6]}", extra)
        note(f"10x: {ten['documents_read']} documents, {ten['chunks']} chunks, {ten_mb:.1f} MB")
    measurement(
        "refresh.backlog_10x_peak_rss_mb",
        ten_mb,
        "MB",
        one_mb,
        f"peak RSS (sampled every 10 ms) of a fresh refresh process over "
        f"{ten['documents_read']} changed documents ({ten['chunks']} chunks of {chunk}) "
        f"vs {one['documents_read']}; within +10 MB",
        ten_mb <= one_mb + 10 and ten["documents_read"] == 10 * one["documents_read"],
    )


# ---------------------------------------------------------------------------
# Fan-out: one backlog refreshed by the job's 1, 2 and 4 tasks
# ---------------------------------------------------------------------------
TASK_COUNTS = (1, 2, 4)
# Columns that record when a row was written, not what it says.
WRITE_TIME = {"refreshed_at"}


def _children(pid: int) -> list[int]:
    """``pid``'s child processes, from /proc (psutil's ``children()`` would read every
    process's stat file at each 10 ms sample)."""
    kids: list[int] = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            kids += [int(kid) for kid in path.read_text().split()]
    return kids


def _is_task(pid: int) -> bool:
    # A child between fork and exec still shows the command's memory: only
    # processes already running the job module count.
    try:
        return JOB_MODULE in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _cpu_s() -> tuple[float, float]:
    """CPU seconds used so far (machine, this benchmark): the machine's busy time
    from /proc/stat; the benchmark's is its own, its live descendants' (the
    emulators) and its reaped children's (each CLI run with its tasks)."""
    with open("/proc/stat") as stat:
        ticks = [int(t) for t in stat.readline().split()[1:9]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # not idle, iowait
    times = os.times()
    return busy, harness.tree_cpu_s(os.getpid()) + times.children_user + times.children_system


def _run_job(
    dataset: str, tasks: int, dates: list[str], extra: dict[str, str]
) -> tuple[dict[str, Any], list[float]]:
    """``rbm-analytics refresh --tasks N``: its summary, and the peak resident set
    (MB) of each of its task processes, largest first."""

    def task_processes(cli: int, seen: Container[int]) -> list[int]:
        return [kid for kid in _children(cli) if kid in seen or _is_task(kid)]

    args = [*dates, "--tasks", str(tasks)]
    summary, peaks = _refresh_cli(args, dataset, extra, task_processes)
    return summary, sorted((mb for mb in peaks.values() if mb), reverse=True)


def _fingerprints(dataset: str) -> dict[str, tuple[int, int, int]]:
    """Per mirror and daily table: (rows, XOR and sum of the rows' fingerprints), every
    column but the write time: equal tables give equal triples, in one query."""
    client = clients.bigquery_client()
    defs = table_defs()
    parts = []
    for name in MIRROR_TABLES + DAILY_TABLES:
        columns = ", ".join(c for c in defs[name].columns if c not in WRITE_TIME)
        fp = f"FARM_FINGERPRINT(TO_JSON_STRING(STRUCT({columns})))"
        parts.append(
            f"SELECT '{name}' AS name, COUNT(*) AS n, BIT_XOR({fp}) AS x, "
            f"SUM(MOD({fp}, 1000003)) AS s FROM `{PROJECT}.{dataset}.{name}`"
        )
    rows = client.query(" UNION ALL ".join(parts)).result()
    return {r["name"]: (r["n"], r["x"] or 0, r["s"] or 0) for r in rows}


def tasks_scaling(messages: int, counts: tuple[int, ...] = TASK_COUNTS) -> None:
    """One backlog of ``messages`` agent messages (receipts and replies, as ingest
    writes them, sharded) refreshed by ``rbm-analytics refresh --tasks N`` for each
    N of ``counts`` (1 first), each into a fresh dataset (its own cursors: each
    reads it all)."""
    rng = random.Random(20260302)
    first = LAST_DAY - timedelta(days=DAYS)
    dates = ["--start", first.isoformat(), "--end", LAST_DAY.isoformat()]
    runs: dict[int, tuple[dict[str, Any], list[float]]] = {}
    # The share of the machine's CPU that other processes took during each run:
    # on a shared machine it tells a clean run from a crowded one.
    others: dict[int, float] = {}
    own: dict[int, float] = {}
    tables: dict[int, dict[str, tuple[int, int, int]]] = {}
    with _emulated():
        store = FirestoreStore(clients.firestore_client(), retention_days=90, deadline_s=60)
        committer = Committer(clients.firestore_client())
        sent, after = _traffic(store, messages, rng, "t")
        creates = [w for w in sent + after if w.create]
        # The refresh reads the change feed per shard: a document without one is never read.
        assert all(SHARD_FIELD in w.fields for w in creates), "ingest's writes carry no shard"
        _write_parallel(committer, sent)
        _write_parallel(committer, after)
        backlog = len({(w.collection, w.doc_id) for w in sent + after})
        note(f"fan-out backlog: {messages} agent messages, {backlog} documents")
        time.sleep(OVERLAP_S + 0.2)
        for count in counts:
            dataset = f"bench_tasks{count}_{uuid.uuid4().hex[:6]}"
            (busy, ours), clock = _cpu_s(), time.perf_counter()
            runs[count] = _run_job(dataset, count, dates, {})
            (busy_end, ours_end), wall = _cpu_s(), time.perf_counter() - clock
            cores = os.cpu_count() or 1
            others[count] = max(0.0, (busy_end - busy) - (ours_end - ours)) / (wall * cores)
            own[count] = (ours_end - ours) / (wall * cores)
            tables[count] = _fingerprints(dataset)
            summary, peaks = runs[count]
            note(
                f"{count} task(s): {summary['documents_read']} documents in "
                f"{summary['seconds']:.1f}s, per task "
                + ", ".join(
                    f"{t['documents_read']}/{t['seconds']:.1f}s" for t in summary["per_task"]
                )
                + f", peak RSS {max(peaks, default=0):.0f} MB"
                + f", CPU: the benchmark's processes {own[count]:.0%}, others {others[count]:.0%}"
            )

    def rates(count: int) -> list[float]:
        return [t["documents_read"] / t["seconds"] for t in runs[count][0]["per_task"]]

    one_s, one_rate = runs[1][0]["seconds"], rates(1)[0]
    for count in counts:
        summary, peaks = runs[count]
        seconds = summary["seconds"]
        correct = (
            all(tables[1][name][0] for name in (*MIRROR_TABLES[:2], "daily_metrics"))
            and summary["failed_tasks"] == 0
            and summary["documents_read"] == backlog
            and len(summary["daily_by_task"]) == 1
            and tables[count] == tables[1]
        )
        same = "; tables identical to 1 task's" if count > 1 else ""
        measurement(
            f"refresh.tasks_{count}_wall_s",
            seconds,
            "s",
            None if count == 1 else one_s,
            f"{count} task process(es) of `rbm-analytics refresh --tasks {count}`, mirror and "
            f"daily step, over a backlog of {backlog} documents; read {summary['documents_read']}"
            f" (= the backlog){same}; largest task's peak RSS {max(peaks, default=0):.0f} MB; "
            f"of the machine's CPU meanwhile the emulators and tasks took {own[count]:.0%}, "
            f"other processes {others[count]:.0%}",
            correct,
        )
        if count > 1:
            measurement(
                f"refresh.tasks_{count}_speedup",
                one_s / seconds,
                "x",
                None,
                f"1 task {one_s:.1f} s / {count} tasks {seconds:.1f} s, same backlog and tables; "
                "reported: on this 2-core machine the Firestore emulator, the BigQuery emulator "
                "and the tasks share the CPU, so the speed-up stops early; the per-task rate "
                "is what extrapolates to the cloud",
                correct,
            )
        per_task = rates(count)
        measurement(
            f"refresh.per_task_documents_per_s_{count}",
            statistics.median(per_task),
            "documents/s",
            None if count == 1 else one_rate,
            f"median over {count} task(s) of documents read / the task's seconds (min "
            f"{min(per_task):.0f}/s); reported",
            None,
        )


def _run_one_task(
    dataset: str, dates: list[str], extra: dict[str, str]
) -> tuple[dict[str, Any], float]:
    summary, peaks = _run_job(dataset, 1, dates, extra)
    if len(peaks) != 1:
        raise RuntimeError(f"expected one task process to sample, saw {len(peaks)}")
    return summary, peaks[0]


def task_backlog_memory(small: int, chunk: int) -> None:
    """Peak RSS of the one task process of ``rbm-analytics refresh --tasks 1`` reading
    ``small`` vs 10 x ``small`` changed documents, ``chunk`` documents per chunk."""
    rng = random.Random(20260202)
    dates = ["--start", "2026-02-01", "--end", "2026-02-28"]
    extra = {"REFRESH_CHUNK_DOCUMENTS": str(chunk)}
    with _emulated():
        store = FirestoreStore(clients.firestore_client(), retention_days=90, deadline_s=60)
        committer = Committer(clients.firestore_client())
        _write_parallel(committer, _sent_only(store, small, 0, rng))
        time.sleep(OVERLAP_S + 0.2)
        one, one_mb = _run_one_task(f"bench_task1x_{uuid.uuid4().hex[:6]}", dates, extra)
        note(f"task 1x: {one['documents_read']} documents, {one_mb:.1f} MB")
        _write_parallel(committer, _sent_only(store, 9 * small, small, rng))
        time.sleep(OVERLAP_S + 0.2)
        ten, ten_mb = _run_one_task(f"bench_task10x_{uuid.uuid4().hex[:6]}", dates, extra)
        note(f"task 10x: {ten['documents_read']} documents, {ten_mb:.1f} MB")
    measurement(
        "refresh.task_backlog_10x_peak_rss_mb",
        ten_mb,
        "MB",
        one_mb,
        f"peak RSS (sampled every 10 ms) of the job task process of `rbm-analytics refresh "
        f"--tasks 1` over {ten['documents_read']} changed documents (chunks of {chunk}) vs "
        f"{one['documents_read']}; within +10 MB",
        ten_mb <= one_mb + 10 and ten["documents_read"] == 10 * one["documents_read"] == 10 * small,
    )


def run(smoke: bool) -> None:
    morning_runs(300 if smoke else 20000, 30 if smoke else 1000)
    history_scaling(500 if smoke else 100_000, 8)
    backlog_memory(300 if smoke else 5_000, 100 if smoke else 2_000)
    # The smoke run starts a process per task: 1 and 2 tasks show the fan-out runs.
    tasks_scaling(60 if smoke else 60_000, (1, 2) if smoke else TASK_COUNTS)
    task_backlog_memory(20 if smoke else 5_000, 50 if smoke else 2_000)
