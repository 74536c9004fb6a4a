"""The ``refresh`` function's core: Firestore changes → BigQuery mirror → daily tables.

    phase start    a ``running`` row in refresh_runs (a killed run stays visible)
    phase mirror   per stream (collection and shard), in (updated_at, id)
                   order, chunk by chunk: read ≤ REFRESH_CHUNK_DOCUMENTS from
                   one or more shards of a collection → load into staging →
                   MERGE into the mirror → save each stream's cursor
    phase metrics  only once every stream is caught up: one transaction
                   replaces the requested dates' daily rows
    phase done     the run's final row in refresh_runs

Every step is idempotent and a cursor moves only after its chunk is committed
in BigQuery, so a run that dies anywhere repeats at most one chunk, and the
next run continues where it stopped (``watermark`` explains the cursors and
the overlap rule). A run that has not caught up when REFRESH_TIME_BUDGET_SECONDS
are spent stops after the chunk in flight: its progress is saved, no daily row
is computed from the partly mirrored window, and it answers 503 so Cloud
Scheduler retries; refresh_runs says ``incomplete``.

HTTP statuses (``handle``): 200 JSON summary; 400 bad dates or body (including
dates whose look-back reaches expired mirror partitions); 405 not POST; 503
still catching up (JSON body with ``"status": "incomplete"``) or Firestore or
BigQuery failed (the run is logged in refresh_runs as failed); Cloud Scheduler
retries both; 500 anything else (a JSON error, the traceback in the log).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from tempfile import TemporaryFile
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery, firestore

from rbm_analytics import web
from rbm_analytics.core import clients as client_cache
from rbm_analytics.core import logs
from rbm_analytics.core.config import Settings, get_settings
from rbm_analytics.core.errors import DomainError, Unavailable
from rbm_analytics.core.http import Request, Response, json_response
from rbm_analytics.refresh import watermark
from rbm_analytics.refresh.plan import RefreshPlan, plan_from_body
from rbm_analytics.refresh.queries import CHANGED_SINCE, QuerySpec
from rbm_analytics.refresh.reader import Chunk, MirrorBatch, read_chunk
from rbm_analytics.refresh.warehouse import DailyCounts, RunRecord, Warehouse

# refresh_runs statuses. A run's rows share its run_id; the latest row wins.
RUNNING, SUCCEEDED, MIRRORED, INCOMPLETE, FAILED = (
    "running", "succeeded", "mirrored", "incomplete", "failed",
)  # fmt: skip


@dataclass(frozen=True)
class Clients:
    """The storage a refresh needs (factories, so a bad request never builds clients)."""

    firestore: Callable[[], firestore.Client]
    bigquery: Callable[[], bigquery.Client]


def default_clients() -> Clients:
    """The instance's cached clients (honouring the emulator hosts)."""
    return Clients(firestore=client_cache.firestore_client, bigquery=client_cache.bigquery_client)


class RefreshFailed(Unavailable):
    """Storage failed during a run; the run is recorded as failed."""


def _phase(phase: str, run_id: str, **fields: Any) -> None:
    logs.info("refresh phase", phase=phase, run_id=run_id, **fields)


def _now() -> datetime:
    """The run's clock (one place, so a test can stand on another day)."""
    return datetime.now(UTC)


def _log_daily(warehouse: Warehouse, plan: RefreshPlan, run_id: str) -> None:
    """One "daily metrics" line per (date, agent) written: what per-agent alerts read.

    ``partial`` marks today's intraday numbers; ``age_days`` (run date minus
    the row's date) lets an alert read each day once, e.g. yesterday's first
    closed numbers at age 1.
    """
    today = plan.run_date or _now().date()
    for row in warehouse.daily_counts(plan.start, plan.end):
        sent, delivered, read = row["sent"], row["delivered"], row["read"]
        logs.info(
            "daily metrics", run_id=run_id, date=row["date"].isoformat(),
            agent_id=row["agent_id"], sent=sent, delivered=delivered, read=read,
            delivery_rate=round(delivered / sent, 4) if sent else None,
            read_rate=round(read / sent, 4) if sent else None,
            partial=plan.intraday, age_days=(today - row["date"]).days,
        )  # fmt: skip


@dataclass(frozen=True)
class Stream:
    """One ordered change feed: a collection (and, sharded, one shard of it)."""

    key: str
    spec: QuerySpec
    shard: int | None = None


def all_streams(settings: Settings) -> list[Stream]:
    """Every stream a complete refresh reads: each collection's SHARD_COUNT shards.

    Documents written before ingest wrote shards have none, and no shard's
    query finds them: ``rbm-analytics backfill-shards`` (run once after the
    upgrade) gives them theirs.
    """
    return [
        Stream(f"{spec.collection}/{shard}", spec, shard)
        for spec in CHANGED_SINCE
        for shard in range(settings.shard_count)
    ]


@dataclass
class MirrorProgress:
    """What the mirror phase did in this run."""

    documents_read: int = 0
    mirror_rows: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    chunks: int = 0
    # Every stream this run was given is caught up (read to its end).
    caught_up: bool = False
    # The oldest saved position among this run's streams: everything changed
    # before it is mirrored (the watermark-lag alert reads its distance to now).
    oldest_position: datetime | None = None

    def watermark_lag_s(self, now: datetime) -> float | None:
        if self.oldest_position is None:
            return None
        return round(max(0.0, (now - self.oldest_position).total_seconds()), 3)


def mirror(
    streams: Sequence[Stream],
    *,
    settings: Settings,
    fs: firestore.Client,
    warehouse: Warehouse,
    run_id: str,
    progress_id: str,
    started_at: datetime,
    deadline: float,
) -> MirrorProgress:
    """Read, load and MERGE ``streams`` chunk by chunk until caught up or ``deadline``.

    ``progress_id`` is recorded on each stream that this run caught up
    (the run id, or a job execution shared by its tasks). ``deadline`` is a
    ``time.monotonic()`` value.
    """
    progress = MirrorProgress(mirror_rows={s.spec.collection: 0 for s in streams})
    saved = watermark.load(fs, warehouse.path)
    start = watermark.start_cursor(fs, warehouse.path)
    cursors = {s.key: watermark.resume(saved, s.key, s.spec.collection, start) for s in streams}
    positions = {key: cursor.updated_at for key, cursor in cursors.items()}

    def oldest() -> datetime | None:
        return min(positions.values(), default=None)

    progress.oldest_position = oldest()
    # Never save a position past the run's start minus the overlap (see watermark).
    limit = watermark.Cursor(started_at - timedelta(seconds=settings.refresh_overlap_s))
    pending = list(streams)
    while pending:
        # The stream furthest behind goes first: a run moves the oldest
        # unmirrored changes first, and no stream waits behind another's
        # backlog. The other pending shards of its collection fill the rest
        # of the chunk, so the chunk is one load and one MERGE however many
        # shards it spans.
        lead = min(pending, key=lambda s: cursors[s.key].updated_at)
        group = sorted(
            (s for s in pending if s.spec.collection == lead.spec.collection),
            key=lambda s: (s is not lead, cursors[s.key].updated_at),
        )
        batch = MirrorBatch(lead.spec.collection, TemporaryFile())  # noqa: SIM115
        reads: list[tuple[Stream, Chunk]] = []
        try:
            room = settings.refresh_chunk_documents
            for stream in group:
                if room <= 0:
                    break
                chunk = read_chunk(
                    fs, stream.spec, cursors[stream.key], room, shard=stream.shard, into=batch
                )
                reads.append((stream, chunk))
                room -= chunk.documents_read
            skipped = sum(c.skipped for _, c in reads)
            if skipped:
                logs.warning(
                    "refresh skipped documents", run_id=run_id, count=skipped,
                    examples=[i for _, c in reads for i in c.skipped_ids][:10],
                )  # fmt: skip
            batch.file.seek(0)
            rows = warehouse.upsert_mirror(batch, run_id)
        finally:
            batch.file.close()
        documents = 0
        for stream, chunk in reads:
            assert chunk.cursor is not None
            cursors[stream.key] = chunk.cursor
            # Read to its end: everything older than the limit was visible to
            # this read, so the stream resumes at the limit (the overlap rule,
            # as one watermark did); otherwise at the last document, never
            # past the limit.
            saved_cursor = limit if chunk.exhausted else chunk.cursor.capped(limit)
            watermark.save(
                fs, warehouse.path, stream.key, saved_cursor, progress_id,
                caught_up=chunk.exhausted,
            )  # fmt: skip
            positions[stream.key] = saved_cursor.updated_at
            documents += chunk.documents_read
            progress.skipped += chunk.skipped
            if chunk.exhausted:
                pending.remove(stream)
        progress.oldest_position = oldest()
        progress.documents_read += documents
        progress.mirror_rows[lead.spec.collection] += rows
        progress.chunks += 1
        _phase("chunk", run_id, stream=lead.spec.collection, shards=len(reads),
               documents=documents, rows=rows,
               caught_up=all(c.exhausted for _, c in reads))  # fmt: skip
        # Checked after a chunk that moved a stream: every run makes progress,
        # however small its budget (an empty read only finds streams caught up).
        if pending and documents and time.monotonic() >= deadline:
            return progress
    progress.caught_up = True
    return progress


def caught_up(fs: firestore.Client, dataset_path: str, streams: Sequence[Stream], by: str) -> bool:
    """True when every one of ``streams`` was caught up by ``by`` (a run or execution)."""
    saved = watermark.load(fs, dataset_path)
    return all(s.key in saved and saved[s.key].caught_up_by == by for s in streams)


def _warehouse(settings: Settings, clients: Clients) -> Warehouse:
    warehouse = Warehouse(
        clients.bigquery(), settings.project, settings.bq_dataset, settings.bq_location
    )
    warehouse.ensure()
    return warehouse


def compute_daily(warehouse: Warehouse, plan: RefreshPlan, settings: Settings,
                  refreshed_at: datetime, run_id: str) -> DailyCounts:  # fmt: skip
    """Recompute ``plan``'s dates in the daily tables (every stream must be caught up)."""
    counts = warehouse.replace_daily(
        plan.start, plan.end, window_days=settings.backfill_days, refreshed_at=refreshed_at
    )
    _log_daily(warehouse, plan, run_id)
    return counts


def run(
    plan: RefreshPlan,
    settings: Settings,
    clients: Clients,
    *,
    streams: Sequence[Stream] | None = None,
    progress_id: str | None = None,
    daily: bool = True,
) -> dict[str, Any]:
    """Run one refresh of ``plan``'s dates; returns the summary.

    By default the run mirrors every stream and then recomputes the daily
    tables. A job task passes its own ``streams``, the execution as
    ``progress_id``, and ``daily=False`` (the final step computes them).
    The summary's ``status`` is ``succeeded``, ``mirrored`` (daily=False and
    caught up) or ``incomplete`` (time budget spent; retry). Raises whatever
    storage raised, after recording the failed run.
    """
    run_id = uuid.uuid4().hex
    progress_id = progress_id or run_id
    streams = all_streams(settings) if streams is None else streams
    started_at = _now()
    clock = time.perf_counter()
    deadline = time.monotonic() + settings.refresh_time_budget_s
    progress = MirrorProgress()
    daily_rows: DailyCounts | None = None
    warehouse: Warehouse | None = None

    def record(status: str, error: str | None = None, finished: bool = True) -> None:
        assert warehouse is not None
        rows = sum(progress.mirror_rows.values()) + (daily_rows.total if daily_rows else 0)
        warehouse.record_run(
            RunRecord(run_id, started_at, datetime.now(UTC) if finished else None, plan.start,
                      plan.end, progress.documents_read, rows, status, error)
        )  # fmt: skip

    try:
        _phase("start", run_id, progress_id=progress_id, streams=len(streams))
        warehouse = _warehouse(settings, clients)
        record(RUNNING, finished=False)
        fs = clients.firestore()
        _phase("mirror", run_id)
        progress = mirror(
            streams, settings=settings, fs=fs, warehouse=warehouse, run_id=run_id,
            progress_id=progress_id, started_at=started_at, deadline=deadline,
        )  # fmt: skip
        if not progress.caught_up:
            status = INCOMPLETE
        elif not daily:
            status = MIRRORED
        else:
            _phase("metrics", run_id)
            daily_rows = compute_daily(warehouse, plan, settings, started_at, run_id)
            status = SUCCEEDED
        _phase("done", run_id, status=status)
        record(status, None if status != INCOMPLETE else "time budget spent; catching up")
    except Exception as exc:
        seconds = round(time.perf_counter() - clock, 3)
        error = f"{type(exc).__name__}: {exc}"[:1000]
        lag = progress.watermark_lag_s(_now())
        logs.error(
            "refresh run", run_id=run_id, status=FAILED, error=error, seconds=seconds,
            first_date=plan.start.isoformat(), last_date=plan.end.isoformat(),
            documents_read=progress.documents_read,
            **({} if lag is None else {"watermark_lag_s": lag}),
        )  # fmt: skip
        if warehouse is not None:
            try:
                record(FAILED, error)
            except Exception as record_exc:  # BigQuery itself may be what failed
                logs.error(
                    "refresh run not recorded", run_id=run_id, error=type(record_exc).__name__
                )
        raise
    summary: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "dates": [d.isoformat() for d in plan.dates] if daily_rows else [],
        "run_date": plan.run_date.isoformat() if plan.run_date else None,
        "intraday": plan.intraday,
        "documents_read": progress.documents_read,
        "documents_skipped": progress.skipped,
        "chunks": progress.chunks,
        "mirror_rows": progress.mirror_rows,
        "daily_rows": None if daily_rows is None else {
            "daily_metrics": daily_rows.daily_metrics,
            "daily_postbacks": daily_rows.daily_postbacks,
            "response_samples": daily_rows.response_samples,
        },
        "rows_written": sum(progress.mirror_rows.values())
        + (daily_rows.total if daily_rows else 0),
        "watermark_lag_s": progress.watermark_lag_s(_now()),
        "seconds": round(time.perf_counter() - clock, 3),
    }  # fmt: skip
    if status == INCOMPLETE:
        summary["error"] = (
            "catching up: the time budget was spent before every change was mirrored; "
            "progress is saved and no daily rows were recomputed; retry"
        )
    level = logs.warning if status == INCOMPLETE else logs.info
    level("refresh run", **{k: v for k, v in summary.items() if k != "dates"},
          first_date=plan.start.isoformat(), last_date=plan.end.isoformat())  # fmt: skip
    return summary


@dataclass(frozen=True)
class Deps:
    settings: Settings
    clients: Clients


def handle(
    request: Request, settings: Settings, clients: Clients, *, started: float | None = None
) -> Response:
    """Serve one refresh request (POST; optional JSON body: run_date, start/end or intraday)."""
    return web.serve(SERVICE, request, lambda: Deps(settings, clients), started=started)


def _refresh(request: Request, deps: Deps, fields: dict[str, Any]) -> Response:
    settings = deps.settings
    plan = plan_from_body(
        request.body,
        today=_now().date(),
        window_days=settings.backfill_days,
        mirror_retention_days=settings.mirror_retention_days,
    )
    fields.update(
        first_date=plan.start.isoformat(), last_date=plan.end.isoformat(), intraday=plan.intraday
    )
    try:
        summary = run(plan, settings, deps.clients)
    except DomainError:
        raise
    except (gexc.GoogleAPIError, OSError) as exc:
        raise RefreshFailed(f"refresh failed ({type(exc).__name__}); retry later") from exc
    fields.update(run_id=summary["run_id"], outcome=summary["status"])
    # Still catching up: non-200 so Cloud Scheduler retries (progress is kept).
    return json_response(503 if summary["status"] == INCOMPLETE else 200, summary)


# Cloud Scheduler posts to the function's URL; any path is the same refresh.
SERVICE = web.Service(
    "refresh",
    (web.Route("refresh", ("POST",), _refresh, "/", prefix=True),),
    usage="POST /",
)


def serve_default(request: Request, started: float) -> Response:
    """``handle`` with the instance's settings and clients (the deployed function)."""
    return handle(request, get_settings(), default_clients(), started=started)
