"""The morning refresh as one task of a Cloud Run job: ``python -m rbm_analytics.refresh.job``.

Cloud Run starts ``CLOUD_RUN_TASK_COUNT`` tasks of one execution
(``CLOUD_RUN_EXECUTION``), task ``CLOUD_RUN_TASK_INDEX`` of them in each
(default: task 0 of 1, so a plain ``python -m`` run does everything). A task:

1. mirrors its share of the change streams (``task_streams``), chunk by chunk
   with each stream's own cursor, exactly as the ``refresh`` function does
   (``routes.run``), until every one of them is caught up: a run that spends
   its time budget saves its progress and the task starts the next run;
2. then looks whether every stream of the whole feed was caught up by this
   execution. The last task to finish its streams finds that, and recomputes
   the daily tables for the plan's dates (the morning's R-W … R-1 unless the
   arguments name other dates) and records that it did (``daily_by``). Tasks
   finishing together claim the step in a Firestore transaction, so one of
   them runs it (BigQuery would abort one of two concurrent transactions on
   the same tables). A retried task keeps its claim and simply recomputes:
   the daily step replaces the same dates from the same mirror, so the
   tables come out identical however often it runs.

One JSON log line ``refresh task`` per task: documents read, seconds,
whether it computed the daily tables. Exit 0 on success (including a task
whose streams are done while another task still mirrors); 1 when storage
failed (Cloud Run retries the task, which resumes after its last committed
chunk); 2 for bad arguments or environment.

The ``refresh`` HTTP function is this with one task: ``routes.run`` over every
stream, then the daily step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from rbm_analytics.core import logs
from rbm_analytics.core.config import Settings, get_settings
from rbm_analytics.core.errors import InvalidInput
from rbm_analytics.core.tables import dataset_path
from rbm_analytics.core.timeutil import today_utc
from rbm_analytics.refresh import routes, watermark
from rbm_analytics.refresh.plan import RefreshPlan, plan_from_body

TASK_INDEX = "CLOUD_RUN_TASK_INDEX"
TASK_COUNT = "CLOUD_RUN_TASK_COUNT"
EXECUTION = "CLOUD_RUN_EXECUTION"


class TaskError(ValueError):
    """The task's environment or arguments are unusable (exit 2, no retry helps)."""


def task_position(env: Mapping[str, str]) -> tuple[int, int, str]:
    """(index, count, execution) from Cloud Run's task variables.

    Without ``CLOUD_RUN_EXECUTION`` a lone task (count 1) makes up its own id;
    several tasks must share one, or none of them could see every stream
    caught up by "this execution".
    """
    try:
        index = int(env.get(TASK_INDEX, "0"))
        count = int(env.get(TASK_COUNT, "1"))
    except ValueError:
        raise TaskError(f"{TASK_INDEX} and {TASK_COUNT} must be integers") from None
    if count < 1 or not 0 <= index < count:
        raise TaskError(f"{TASK_INDEX}={index} is not a task of {TASK_COUNT}={count}")
    execution = env.get(EXECUTION, "")
    if not execution:
        if count > 1:
            raise TaskError(f"{EXECUTION} must name the execution shared by {count} tasks")
        execution = f"task-{uuid.uuid4().hex}"
    return index, count, execution


def task_streams(streams: Sequence[routes.Stream], index: int, count: int) -> list[routes.Stream]:
    """Task ``index`` of ``count``'s streams: a deterministic split of ``streams``.

    A shard's stream goes to task ``shard % count``; an unsharded stream by its
    position in the list. Every stream belongs to exactly one task, and one
    task reads them all.
    """
    return [
        s for i, s in enumerate(streams) if (i if s.shard is None else s.shard) % count == index
    ]


def _plan(argv: Sequence[str], settings: Settings) -> RefreshPlan:
    parser = argparse.ArgumentParser(
        prog="python -m rbm_analytics.refresh.job",
        description="One task of the refresh job (the morning's dates unless given).",
    )
    parser.add_argument("--run-date", metavar="YYYY-MM-DD")
    parser.add_argument("--start", metavar="YYYY-MM-DD")
    parser.add_argument("--end", metavar="YYYY-MM-DD")
    args = parser.parse_args(argv)
    body = {
        key: value
        for key, value in (("run_date", args.run_date), ("start", args.start), ("end", args.end))
        if value is not None
    }
    try:
        return plan_from_body(
            json.dumps(body).encode(),
            today=today_utc(),
            window_days=settings.backfill_days,
            mirror_retention_days=settings.mirror_retention_days,
        )
    except InvalidInput as exc:
        raise TaskError(exc.message) from None


def run_task(
    refresh_plan: RefreshPlan,
    settings: Settings,
    clients: routes.Clients,
    *,
    index: int,
    count: int,
    execution: str,
) -> dict[str, Any]:
    """Mirror this task's streams to the end, then the daily step if the feed is caught up.

    Returns the task's summary; raises whatever storage raised.
    """
    every = routes.all_streams(settings)
    mine = task_streams(every, index, count)
    documents = runs = 0
    while True:
        summary = routes.run(
            refresh_plan, settings, clients, streams=mine, progress_id=execution, daily=False
        )
        documents += summary["documents_read"]
        runs += 1
        # Each run moves at least one chunk, so a backlog ends.
        if summary["status"] != routes.INCOMPLETE:
            break
    fs = clients.firestore()
    dataset = dataset_path(settings.project, settings.bq_dataset)
    daily_run: str | None = None
    if (
        routes.caught_up(fs, dataset, every, execution)
        and watermark.daily_by(fs, dataset) != execution
        and watermark.claim_daily(fs, dataset, execution, f"task-{index}")
    ):
        # Every stream is mirrored up to this execution: the final step is a
        # run over no streams, which only recomputes the daily tables.
        final = routes.run(refresh_plan, settings, clients, streams=(), progress_id=execution)
        watermark.mark_daily(fs, dataset, execution)
        daily_run = final["run_id"]
    return {
        "execution": execution,
        "task_index": index,
        "task_count": count,
        "streams": [s.key for s in mine],
        "runs": runs,
        "documents_read": documents,
        "daily": daily_run is not None,
        "daily_run_id": daily_run,
        "first_date": refresh_plan.start.isoformat(),
        "last_date": refresh_plan.end.isoformat(),
    }


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one task; the exit status Cloud Run acts on (non-zero: the task is retried)."""
    clock = time.perf_counter()
    env = os.environ if env is None else env
    settings = get_settings()
    try:
        index, count, execution = task_position(env)
        refresh_plan = _plan(sys.argv[1:] if argv is None else argv, settings)
    except TaskError as exc:
        logs.error("refresh task", status="bad_arguments", error=str(exc))
        return 2
    try:
        summary = run_task(
            refresh_plan, settings, routes.default_clients(),
            index=index, count=count, execution=execution,
        )  # fmt: skip
    except Exception as exc:
        logs.error(
            "refresh task", status="failed", execution=execution, task_index=index,
            task_count=count, error=f"{type(exc).__name__}: {exc}"[:1000],
            seconds=round(time.perf_counter() - clock, 3),
        )  # fmt: skip
        return 1
    logs.info(
        "refresh task", status="succeeded", **summary,
        seconds=round(time.perf_counter() - clock, 3),
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
