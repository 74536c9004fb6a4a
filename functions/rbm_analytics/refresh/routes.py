"""The ``refresh`` function's core: Firestore changes → BigQuery mirror → daily tables.

    phase read     documents with updated_at >= watermark (Firestore)
    phase mirror   load + MERGE into agent_messages, user_messages, user_events
    phase metrics  one transaction replaces the requested dates' daily rows
    phase done     watermark = run start - REFRESH_OVERLAP_SECONDS; run row

Every phase is idempotent and the watermark moves last, so a run that dies
anywhere is repaired by the next run of the same dates.

HTTP statuses (``handle``): 200 JSON summary; 400 bad dates or body; 405 not
POST; 503 Firestore or BigQuery failed (the run is logged in refresh_runs as
failed; Cloud Scheduler retries); 500 anything else (a JSON error, the
traceback in the log).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery, firestore

from rbm_analytics import web
from rbm_analytics.core import clients as client_cache
from rbm_analytics.core import logs
from rbm_analytics.core.config import Settings, get_settings
from rbm_analytics.core.errors import HttpError, ServiceUnavailable
from rbm_analytics.core.http import Request, Response, json_response
from rbm_analytics.refresh import watermark
from rbm_analytics.refresh.plan import RefreshPlan, plan_from_body
from rbm_analytics.refresh.reader import read_changed
from rbm_analytics.refresh.warehouse import RunRecord, Warehouse


@dataclass(frozen=True)
class Clients:
    """The storage a refresh needs (factories, so a bad request never builds clients)."""

    firestore: Callable[[], firestore.Client]
    bigquery: Callable[[], bigquery.Client]


def default_clients() -> Clients:
    """The instance's cached clients (honouring the emulator hosts)."""
    return Clients(firestore=client_cache.firestore_client, bigquery=client_cache.bigquery_client)


class RefreshFailed(ServiceUnavailable):
    """Storage failed during a run; the run is recorded as failed."""


def _phase(phase: str, run_id: str) -> None:
    logs.info("refresh phase", phase=phase, run_id=run_id)


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


def run(plan: RefreshPlan, settings: Settings, clients: Clients) -> dict[str, Any]:
    """Run one refresh of ``plan``'s dates; returns the summary.

    Raises whatever storage raised, after recording the failed run.
    """
    run_id = uuid.uuid4().hex
    started_at = _now()
    clock = time.perf_counter()
    documents_read: int | None = None
    rows_written = 0
    warehouse: Warehouse | None = None
    try:
        _phase("read", run_id)
        warehouse = Warehouse(
            clients.bigquery(), settings.project, settings.bq_dataset, settings.bq_location
        )
        warehouse.ensure()
        fs = clients.firestore()
        changes = read_changed(fs, watermark.load(fs, warehouse.path))
        documents_read = changes.documents_read
        if changes.skipped:
            logs.warning(
                "refresh skipped documents", run_id=run_id, count=changes.skipped,
                examples=changes.skipped_ids,
            )  # fmt: skip
        try:
            _phase("mirror", run_id)
            mirror_rows = {
                table: warehouse.upsert_mirror(batch, run_id)
                for table, batch in changes.batches.items()
            }
        finally:
            changes.close()
        rows_written = sum(mirror_rows.values())
        _phase("metrics", run_id)
        daily = warehouse.replace_daily(
            plan.start, plan.end, window_days=settings.backfill_days, refreshed_at=started_at
        )
        rows_written += daily.total
        _log_daily(warehouse, plan, run_id)
        _phase("done", run_id)
        # Only now is everything read up to the run's start safely in BigQuery.
        since = started_at - timedelta(seconds=settings.refresh_overlap_s)
        watermark.save(fs, warehouse.path, since, run_id)
        finished_at = _now()
        warehouse.record_run(
            RunRecord(run_id, started_at, finished_at, plan.start, plan.end, documents_read,
                      rows_written, "succeeded", None)
        )  # fmt: skip
    except Exception as exc:
        seconds = round(time.perf_counter() - clock, 3)
        error = f"{type(exc).__name__}: {exc}"[:1000]
        logs.error(
            "refresh run", run_id=run_id, status="failed", error=error, seconds=seconds,
            first_date=plan.start.isoformat(), last_date=plan.end.isoformat(),
            documents_read=documents_read, rows_written=rows_written,
        )  # fmt: skip
        if warehouse is not None:
            _record_failure(
                warehouse, run_id, started_at, plan, documents_read, rows_written, error
            )
        raise
    summary: dict[str, Any] = {
        "run_id": run_id,
        "status": "succeeded",
        "dates": [d.isoformat() for d in plan.dates],
        "run_date": plan.run_date.isoformat() if plan.run_date else None,
        "intraday": plan.intraday,
        "documents_read": documents_read,
        "documents_skipped": changes.skipped,
        "mirror_rows": mirror_rows,
        "daily_rows": {
            "daily_metrics": daily.daily_metrics,
            "daily_postbacks": daily.daily_postbacks,
            "response_samples": daily.response_samples,
        },
        "rows_written": rows_written,
        "seconds": round(time.perf_counter() - clock, 3),
    }
    logs.info("refresh run", **{k: v for k, v in summary.items() if k != "dates"},
              first_date=plan.start.isoformat(), last_date=plan.end.isoformat())  # fmt: skip
    return summary


def _record_failure(
    warehouse: Warehouse,
    run_id: str,
    started_at: datetime,
    plan: RefreshPlan,
    documents_read: int | None,
    rows_written: int,
    error: str,
) -> None:
    try:
        warehouse.record_run(
            RunRecord(run_id, started_at, datetime.now(UTC), plan.start, plan.end,
                      documents_read, rows_written, "failed", error)
        )  # fmt: skip
    except Exception as exc:  # BigQuery itself may be what failed
        logs.error("refresh run not recorded", run_id=run_id, error=type(exc).__name__)


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
    today = _now().date()
    plan = plan_from_body(request.body, today=today, window_days=settings.backfill_days)
    fields.update(
        first_date=plan.start.isoformat(), last_date=plan.end.isoformat(), intraday=plan.intraday
    )
    try:
        summary = run(plan, settings, deps.clients)
    except HttpError:
        raise
    except (gexc.GoogleAPIError, OSError) as exc:
        raise RefreshFailed(f"refresh failed ({type(exc).__name__}); retry later") from exc
    fields.update(run_id=summary["run_id"], outcome=summary["status"])
    return json_response(200, summary)


# Cloud Scheduler posts to the function's URL; any path is the same refresh.
SERVICE = web.Service(
    "refresh",
    (web.Route("refresh", ("POST",), _refresh, "/", prefix=True),),
    usage="POST /",
)


def serve_default(request: Request, started: float) -> Response:
    """``handle`` with the instance's settings and clients (the deployed function)."""
    return handle(request, get_settings(), default_clients(), started=started)
