"""The export's SQL: every metric's definition over a period, and the one query.

A period is a day, an ISO week (labelled by its Monday) or a calendar month
(labelled by its 1st), and only ever covers the days inside [start, end]:

    start = Wed 2026-01-07                      end = Tue 2026-02-03
            |                                          |
    week 2026-01-05: Wed..Sun only      week 2026-02-02: Mon..Tue only
    month 2026-01-01: Jan 7..31         month 2026-02-01: Feb 1..3

The zero-fill happens in SQL (every period x every agent, LEFT JOIN the
aggregates) and the rows come back ordered by date then agent_id, so Python
only streams what BigQuery pages out. User input reaches BigQuery as query
parameters only; identifiers come from the catalog below and from validated
settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from google.cloud import bigquery

from rbm_analytics.core.config import Settings
from rbm_analytics.core.tables import dataset_path, reach_dataset
from rbm_analytics.metrics import catalog
from rbm_analytics.metrics.catalog import Combine, Metric

# The metrics and how each one combines over a period: the catalog's.
METRICS = catalog.METRICS
DEFAULT_METRICS = catalog.DEFAULT_METRICS
# status=1: how far a period's numbers can still move, worst day first.
STATUS_COLUMN = "status"
STATUSES = ("final", "provisional", "partial")
# total=1: one more row per period, every agent together. Not a valid agent
# id, so it never collides with one, and it sorts before every agent.
ALL_AGENTS = "*"
SCALES = ("day", "week", "month")
KEY_COLUMNS = ("date", "agent_id")

# How a date maps to its period's label.
_PERIOD = {
    "day": "{d}",
    "week": "DATE_TRUNC({d}, ISOWEEK)",
    "month": "DATE_TRUNC({d}, MONTH)",
}


def table_ref(settings: Settings, table: str) -> str:
    """The backquoted ``project.dataset.table`` name; 503 when the settings are not ids."""
    return f"`{dataset_path(settings.project, settings.bq_dataset)}.{table}`"


def reach_ref(settings: Settings) -> str:
    """The backquoted authorized function counting distinct users per period (period_reach)."""
    return f"`{dataset_path(settings.project, reach_dataset(settings.bq_dataset))}.period_reach`"


@dataclass(frozen=True)
class Query:
    sql: str
    parameters: tuple[bigquery.ScalarQueryParameter, ...]

    def job_config(self) -> bigquery.QueryJobConfig:
        return bigquery.QueryJobConfig(query_parameters=list(self.parameters))


def _q(column: str) -> str:
    return f"`{column}`"


def _parameters(
    start: date, end: date, agent: str | None
) -> tuple[bigquery.ScalarQueryParameter, ...]:
    params = [
        bigquery.ScalarQueryParameter("start", "DATE", start),
        bigquery.ScalarQueryParameter("end", "DATE", end),
    ]
    if agent is not None:
        params.append(bigquery.ScalarQueryParameter("agent", "STRING", agent))
    return tuple(params)


@dataclass(frozen=True)
class StatusClock:
    """What ``status`` is judged against: today (UTC) and the backfill window W."""

    today: date
    window_days: int

    def parameters(self) -> tuple[bigquery.ScalarQueryParameter, ...]:
        return (
            bigquery.ScalarQueryParameter("today", "DATE", self.today),
            bigquery.ScalarQueryParameter("window_days", "INT64", self.window_days),
        )


# A day's status, from when its rows were computed (every row of a date is
# written by one refresh; the oldest one decides):
#
#   refreshed_at <  D+1 00:00        partial      computed while D was running
#   refreshed_at <  D+W 00:00        provisional  receipts may still count for D
#   refreshed_at >= D+W 00:00        final        computed after D's cutoff
#
# A date without any row says nothing about its refresh; the clock decides:
# D >= today partial, D > today - W provisional, else final. A week or month
# takes its worst day (inside [start, end]).
_DAY_STATUS = """day_status AS (
  SELECT {period} AS period, MAX(CASE
    WHEN r.refreshed_at IS NULL THEN
      IF(d >= @today, 2, IF(d > DATE_SUB(@today, INTERVAL @window_days DAY), 1, 0))
    WHEN r.refreshed_at < TIMESTAMP(DATE_ADD(d, INTERVAL 1 DAY)) THEN 2
    WHEN r.refreshed_at < TIMESTAMP(DATE_ADD(d, INTERVAL @window_days DAY)) THEN 1
    ELSE 0
  END) AS status_rank
  FROM UNNEST(GENERATE_DATE_ARRAY(@start, @end)) AS d
  LEFT JOIN (
    SELECT `date`, MIN(`refreshed_at`) AS refreshed_at FROM {daily}
    WHERE `date` BETWEEN @start AND @end
    GROUP BY `date`
  ) AS r ON r.`date` = d
  GROUP BY period
)"""


def _status_expr(rank: str) -> str:
    whens = " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(STATUSES))
    return f"CASE {rank} {whens} END"


def _aggregate(metric: Metric, scale: str, total: bool) -> str:
    """The expression combining one daily_metrics column over a period's rows."""
    col = _q(metric.name)
    if metric.combine is Combine.SUM:
        return f"SUM({col})"
    if metric.combine is Combine.LATEST:
        return f"MAX({col})"
    if metric.combine is Combine.PERIOD_DISTINCT and scale == "day":
        # An agent's day is one row; the all-agents row comes from period_reach.
        return f"SUM({col})"
    if scale == "day":
        # One row per (date, agent): the refresh's own value, untouched. The
        # all-agents row of a day combines several agents like a period does.
        own = f"MAX({col})"
        if total and metric.combine is Combine.WEIGHTED_AVERAGE:
            return f"IF(`agent_id` = '{ALL_AGENTS}', {_aggregate(metric, 'week', total)}, {own})"
        return own
    if metric.combine is Combine.WEIGHTED_AVERAGE:
        # The period's integer sum of milliseconds over its number of samples,
        # in seconds: exact and independent of the order rows are summed in.
        # Days without a stored sum (none written yet) count for neither.
        assert metric.weight is not None and metric.sum_ms is not None
        weight, summed = _q(metric.weight), _q(metric.sum_ms)
        return f"SAFE_DIVIDE(SUM({summed}), SUM(IF({summed} IS NULL, 0, {weight}))) / 1000"
    raise ValueError(f"{metric.name} is not a daily_metrics aggregate")


def build_export_query(
    settings: Settings,
    *,
    start: date,
    end: date,
    scale: str,
    metrics: Sequence[str],
    agent: str | None,
    status: StatusClock | None = None,
    total: bool = False,
) -> Query:
    """One query returning ``date, agent_id, <metrics>`` per (period, agent), zero-filled.

    Rows are ordered by date then agent_id. Without ``agent`` the agents are
    those with any daily_metrics row in [start, end]; with it, just that one.
    With ``status``, a last column says partial, provisional or final. With
    ``total``, each period also has a row for agent ``*``: every agent
    together (whatever ``agent`` says), combined as a period combines days.
    """
    if scale not in _PERIOD:
        raise ValueError(f"unknown scale {scale!r}")
    chosen = [METRICS[name] for name in metrics]
    period_of = _PERIOD[scale]
    daily = table_ref(settings, "daily_metrics")
    samples = table_ref(settings, "response_samples")
    agent_filter = " AND `agent_id` = @agent" if agent is not None else ""

    def rows_of(table: str, columns: Sequence[str], where: str, *, agents: bool = True) -> str:
        """``table``'s rows in range, each agent's and/or (total) all agents' as ``*``."""
        names = ", ".join(_q(c) for c in columns)
        own = f"SELECT `agent_id`, {names} FROM {table} WHERE {where}{agent_filter}"  # noqa: S608 (catalog identifiers only)
        pooled = f"SELECT '{ALL_AGENTS}' AS `agent_id`, {names} FROM {table} WHERE {where}"  # noqa: S608 (catalog identifiers only)
        parts = ([own] if agents else []) + ([pooled] if total else [])
        return "(\n    " + "\n    UNION ALL\n    ".join(parts) + "\n  )"

    # Columns the aggregate CTE must carry: what was asked plus what rates need.
    needed: list[Metric] = []
    for metric in chosen:
        deps: list[str] = [metric.name]
        if metric.combine is Combine.RATE:
            assert metric.ratio is not None
            deps = list(metric.ratio)
        elif metric.combine in (Combine.PERIOD_PERCENTILE, Combine.PERIOD_DISTINCT) and (
            scale != "day"
        ):
            deps = []
        elif metric.combine is Combine.WEIGHTED_AVERAGE and (total or scale != "day"):
            assert metric.weight is not None and metric.sum_ms is not None
            deps = [metric.name, metric.weight, metric.sum_ms]
        for dep in deps:
            if METRICS[dep] not in needed:
                needed.append(METRICS[dep])

    agent_rows = (
        "SELECT @agent AS agent_id"
        if agent is not None
        else f"SELECT DISTINCT `agent_id` FROM {daily} WHERE `date` BETWEEN @start AND @end"  # noqa: S608 (catalog identifiers only)
    )
    if total:
        agent_rows += f"\n  UNION ALL SELECT '{ALL_AGENTS}'"
    ctes = [
        "periods AS (\n"  # noqa: S608 (catalog identifiers only)
        f"  SELECT DISTINCT {period_of.format(d='d')} AS period\n"
        "  FROM UNNEST(GENERATE_DATE_ARRAY(@start, @end)) AS d\n"
        ")",
        f"agents AS (\n  {agent_rows}\n)",
    ]
    in_range = "`date` BETWEEN @start AND @end"
    joins: list[str] = []
    if needed:
        columns = ",\n".join(f"    {_aggregate(m, scale, total)} AS {_q(m.name)}" for m in needed)
        source = rows_of(daily, ["date", *(m.name for m in needed)], in_range)
        ctes.append(
            "totals AS (\n"  # noqa: S608 (catalog identifiers only)
            f"  SELECT {period_of.format(d='`date`')} AS period, `agent_id`,\n{columns}\n"
            f"  FROM {source}\n"
            "  GROUP BY period, `agent_id`\n"
            ")"
        )
        joins.append("totals")

    # Week and month percentiles: nearest rank over the period's own samples,
    # never an average of daily values; at day scale only the all-agents row
    # needs them (an agent's day is the refresh's own value).
    # PERCENTILE_DISC(x, p / 100) is the first sorted sample whose cumulative
    # distribution is >= p / 100: the ceil(p * n / 100)-th smallest. One pass
    # over response_samples for all of them.
    percentiles = [m for m in chosen if m.combine is Combine.PERIOD_PERCENTILE]
    if percentiles and (scale != "day" or total):
        windows = sorted({(str(m.sample), int(m.percentile or 0)) for m in percentiles})
        ranked = ",\n".join(
            f"      PERCENTILE_DISC(`duration_ms`, {p / 100}) OVER period_series AS `{sample}_p{p}`"
            for sample, p in windows
        )
        columns = ",\n".join(
            f"    MAX(IF(`metric` = '{m.sample}', `{m.sample}_p{m.percentile}`, NULL)) / 1000"
            f" AS {_q(m.name)}"
            for m in percentiles
        )
        metric_names = ", ".join(sorted({f"'{m.sample}'" for m in percentiles}))
        source = rows_of(
            samples,
            ["date", "metric", "duration_ms"],
            f"{in_range} AND `metric` IN ({metric_names})",
            agents=scale != "day",
        )
        ctes.append(
            "period_samples AS (\n"  # noqa: S608 (catalog identifiers only)
            f"  SELECT period, `agent_id`,\n{columns}\n"
            "  FROM (\n"
            f"    SELECT {period_of.format(d='`date`')} AS period, `agent_id`, `metric`,\n"
            f"{ranked}\n"
            f"    FROM {source}\n"
            "    WINDOW period_series AS (\n"
            f"      PARTITION BY {period_of.format(d='`date`')}, `agent_id`, `metric`)\n"
            "  )\n"
            "  GROUP BY period, `agent_id`\n"
            ")"
        )
        joins.append("period_samples")

    # Week and month reach: distinct users over the period's own days (a user
    # active on several days counts once), which daily values cannot give.
    # They come from the mirror through period_reach, an authorized function
    # returning counts only: export holds no read access to the mirror. The
    # all-agents row counts each user once however many agents reached them,
    # at day scale too.
    distinct = [m for m in chosen if m.combine is Combine.PERIOD_DISTINCT]
    parameters = _parameters(start, end, agent)
    if distinct and (scale != "day" or total):
        names = ", ".join(_q(m.name) for m in distinct)
        pooled_only = "" if scale != "day" else f"\n  WHERE `agent_id` = '{ALL_AGENTS}'"
        ctes.append(
            "reach AS (\n"  # noqa: S608 (catalog identifiers only)
            f"  SELECT `date` AS period, `agent_id`, {names}\n"
            f"  FROM {reach_ref(settings)}(@start, @end, @scale){pooled_only}\n"
            ")"
        )
        joins.append("reach")
        parameters += (bigquery.ScalarQueryParameter("scale", "STRING", scale),)

    select = ["periods.period AS `date`", "agents.agent_id AS `agent_id`"]
    for metric in chosen:
        name = _q(metric.name)
        if metric.combine is Combine.SUM:
            expr = f"COALESCE(totals.{name}, 0)"
        elif metric.combine is Combine.PERIOD_DISTINCT and scale != "day":
            expr = f"COALESCE(reach.{name}, 0)"
        elif metric.combine is Combine.PERIOD_DISTINCT and total:
            expr = (
                f"IF(agents.agent_id = '{ALL_AGENTS}', COALESCE(reach.{name}, 0), "
                f"COALESCE(totals.{name}, 0))"
            )
        elif metric.combine is Combine.PERIOD_DISTINCT:
            expr = f"COALESCE(totals.{name}, 0)"
        elif metric.combine is Combine.RATE:
            assert metric.ratio is not None
            num, den = (_q(c) for c in metric.ratio)
            expr = f"ROUND(SAFE_DIVIDE(totals.{num}, totals.{den}), 4)"
        elif metric.combine is Combine.PERIOD_PERCENTILE and scale != "day":
            expr = f"period_samples.{name}"
        elif metric.combine is Combine.PERIOD_PERCENTILE and total:
            expr = f"IF(agents.agent_id = '{ALL_AGENTS}', period_samples.{name}, totals.{name})"
        else:
            expr = f"totals.{name}"
        select.append(f"{expr} AS {name}")

    join_sql = "".join(
        f"\nLEFT JOIN {j} ON {j}.period = periods.period AND {j}.agent_id = agents.agent_id"
        for j in joins
    )
    if status is not None:
        ctes.append(_DAY_STATUS.format(period=period_of.format(d="d"), daily=daily))
        select.append(f"{_status_expr('day_status.status_rank')} AS `{STATUS_COLUMN}`")
        join_sql += "\nJOIN day_status ON day_status.period = periods.period"
        parameters += status.parameters()
    sql = (
        "WITH "
        + ",\n".join(ctes)
        + "\nSELECT\n  "
        + ",\n  ".join(select)
        + "\nFROM periods CROSS JOIN agents"
        + join_sql
        + "\nORDER BY `date`, `agent_id`"
    )
    return Query(sql, parameters)


def build_agents_query(settings: Settings, *, start: date, end: date) -> Query:
    """The agents with any daily_metrics row in [start, end], sorted."""
    daily = table_ref(settings, "daily_metrics")
    sql = (
        f"SELECT DISTINCT `agent_id` FROM {daily}\n"  # noqa: S608 (catalog identifiers only)
        "WHERE `date` BETWEEN @start AND @end\n"
        "ORDER BY `agent_id`"
    )
    return Query(sql, _parameters(start, end, None))
