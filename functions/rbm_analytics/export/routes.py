"""The ``export`` function (docs/contract.md §4): *Export data* and the Analytics page.

    GET /          rows per (period, agent) as CSV (default) or JSON, streamed
    GET /agents    {"start", "end", "agents": [...]}: agents with any row in [start, end]
    GET /ui        the Analytics page (and /ui/app.js, /ui/style.css)

Statuses: 200; 400 a bad parameter (JSON ``{"error"}`` naming it); 404 an
unknown path; 405 not GET; 500 BigQuery rejected the query; 503 BigQuery
unreachable or failing, a table missing, or the settings are not valid ids.

The CSV or JSON body is a generator: BigQuery's result pages are encoded one
at a time as they arrive, so memory stays flat however many rows there are.
The query runs, and its first page is fetched, before the response starts:
a failure there is a clean 503 rather than a truncated 200.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from google.api_core import exceptions as gexc
from google.auth.exceptions import GoogleAuthError
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY

from rbm_analytics import web
from rbm_analytics.core import clients as client_cache
from rbm_analytics.core import logs
from rbm_analytics.core.config import Settings, get_settings
from rbm_analytics.core.errors import DomainError, Unavailable
from rbm_analytics.core.http import Request, Response, json_response
from rbm_analytics.core.timeutil import today_utc
from rbm_analytics.export import ui as export_ui
from rbm_analytics.export.format import Row, csv_chunks, json_chunks
from rbm_analytics.export.params import ExportParams, parse_agents_params, parse_export_params
from rbm_analytics.export.query import (
    Query,
    StatusClock,
    build_agents_query,
    build_export_query,
)

# Cells (rows x columns) per BigQuery result page. A page is what the
# function holds at once (two while the next one is fetched), so the page
# size follows the number of columns: ~15 MB of parsed JSON per page.
PAGE_CELLS = 30_000
MIN_PAGE_ROWS, MAX_PAGE_ROWS = 500, 10_000
# How long transient BigQuery errors are retried before the caller gets a 503
# (the library's default is 10 minutes, longer than the function may run).
RETRY_DEADLINE_S = 30.0

AGENTS_PATH = "/agents"

ClientFactory = Callable[[], bigquery.Client]


class QueryFailed(DomainError):
    """BigQuery refused the query itself: a bug here, not a transient failure."""

    status = 500


@dataclass(frozen=True)
class Deps:
    settings: Settings
    client_factory: ClientFactory
    today: date
    retry_deadline_s: float


def handle(
    request: Request,
    settings: Settings,
    client_factory: ClientFactory,
    today: Callable[[], date] = today_utc,
    retry_deadline_s: float = RETRY_DEADLINE_S,
    *,
    started: float | None = None,
) -> Response:
    """Serve one export request; a streamed body logs its line when it ends."""
    return web.serve(
        SERVICE,
        request,
        lambda: Deps(settings, client_factory, today(), retry_deadline_s),
        started=started,
    )


def _ui(request: Request, deps: Deps, fields: dict[str, Any]) -> Response:
    return export_ui.serve(request.path)


def _agents(request: Request, deps: Deps, fields: dict[str, Any]) -> Response:
    span = parse_agents_params(request.query, deps.today)
    query = build_agents_query(deps.settings, start=span.start, end=span.end)
    pages = run_query(deps.client_factory, query, retry_deadline_s=deps.retry_deadline_s)
    agents = [row[0] for page in pages for row in page]
    fields["agents"] = len(agents)
    return json_response(
        200,
        {"start": span.start.isoformat(), "end": span.end.isoformat(), "agents": agents},
    )


def _export(request: Request, deps: Deps, fields: dict[str, Any]) -> Response:
    params = parse_export_params(request.query, deps.today)
    fields.update(
        start=params.start.isoformat(),
        end=params.end.isoformat(),
        scale=params.scale,
        metrics=",".join(params.metrics),
        agent_filter=params.agent is not None,
        format=params.format,
        status=params.status,
        total=params.total,
    )
    chunks = export_chunks(
        params, deps.settings, deps.client_factory, deps.retry_deadline_s, today=deps.today
    )
    content_type = "text/csv; charset=utf-8" if params.format == "csv" else "application/json"
    return Response(
        200,
        chunks,
        content_type,
        {"Content-Disposition": f'attachment; filename="{params.filename}"'},
    )


def export_chunks(
    params: ExportParams,
    settings: Settings,
    client_factory: ClientFactory,
    retry_deadline_s: float = RETRY_DEADLINE_S,
    *,
    today: date | None = None,
) -> Iterator[bytes]:
    """Run the export query and return its encoded body, one chunk per result page.

    ``today`` (UTC, default the real one) is what ``status`` is judged against.
    """
    clock = StatusClock(today or today_utc(), settings.backfill_days)
    query = build_export_query(
        settings,
        start=params.start,
        end=params.end,
        scale=params.scale,
        metrics=params.metrics,
        agent=params.agent,
        status=clock if params.status else None,
        total=params.total,
    )
    pages = run_query(
        client_factory,
        query,
        rows_per_page=page_rows(len(params.columns)),
        retry_deadline_s=retry_deadline_s,
    )
    encode = csv_chunks if params.format == "csv" else json_chunks
    return encode(params.columns, pages)


def page_rows(columns: int) -> int:
    """Rows per result page for a result of ``columns`` columns."""
    return max(MIN_PAGE_ROWS, min(MAX_PAGE_ROWS, PAGE_CELLS // max(columns, 1)))


def run_query(
    client_factory: ClientFactory,
    query: Query,
    rows_per_page: int = MAX_PAGE_ROWS,
    retry_deadline_s: float = RETRY_DEADLINE_S,
) -> Iterator[Iterable[Row]]:
    """Start ``query`` and fetch its first page; then hand out pages as they arrive.

    Raises Unavailable (503) or QueryFailed (500) before any row is
    returned; a failure on a later page is logged and re-raised, which aborts
    the response rather than ending it as if complete.
    """
    retry = DEFAULT_RETRY.with_deadline(retry_deadline_s)
    job_retry = DEFAULT_JOB_RETRY.with_deadline(retry_deadline_s)
    try:
        client = client_factory()
        # job_retry=None: otherwise the library wraps the insert in its own
        # 10-minute retry; `retry` still covers transient insert errors.
        job = client.query(query.sql, job_config=query.job_config(), retry=retry, job_retry=None)
        result = job.result(page_size=rows_per_page, retry=retry, job_retry=job_retry)
        pages = iter(result.pages)
        first = next(pages, None)
    except gexc.NotFound as exc:
        logs.error("export table missing", error=str(exc)[:500])
        raise Unavailable(
            "a BigQuery table of the export is missing; has refresh run in this dataset?"
        ) from exc
    except gexc.BadRequest as exc:
        logs.error("export query rejected", error=str(exc)[:500])
        raise QueryFailed("BigQuery rejected the export query") from exc
    except (gexc.GoogleAPIError, GoogleAuthError, OSError) as exc:
        logs.error("export query failed", error=str(exc)[:500])
        raise Unavailable("BigQuery is unavailable; retry later") from exc
    return _pages(first, pages)


def _pages(first: Any, rest: Iterator[Any]) -> Iterator[Iterable[Row]]:
    if first is None:
        return
    # Rows are yielded as they are: Row.values() would deep-copy every row.
    yield first
    del first
    try:
        yield from rest
    except (gexc.GoogleAPIError, GoogleAuthError, OSError) as exc:
        logs.error("export stream failed", error=str(exc)[:500])
        raise


SERVICE = web.Service(
    "export",
    (
        web.Route("export", ("GET",), _export, "/"),
        web.Route("agents", ("GET",), _agents, AGENTS_PATH),
        web.Route("ui", ("GET",), _ui, export_ui.UI_PATH, prefix=True),
    ),
    usage="GET /, /agents or /ui",
)


def serve_default(request: Request, started: float) -> Response:
    """``handle`` with the instance's settings and BigQuery client (the deployed function)."""
    return handle(request, get_settings(), client_cache.bigquery_client, started=started)
