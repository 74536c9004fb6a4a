"""The refresh job's task split: which streams each of N tasks reads."""

from __future__ import annotations

import pytest
from rbm_analytics.core.config import get_settings
from rbm_analytics.refresh import job, routes
from rbm_analytics.refresh.queries import CHANGED_SINCE


def test_a_lone_task_reads_every_stream_and_names_its_own_execution() -> None:
    index, count, execution = job.task_position({})
    assert (index, count) == (0, 1)
    assert execution
    streams = routes.all_streams(get_settings())
    assert job.task_streams(streams, 0, 1) == streams


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_every_stream_belongs_to_exactly_one_of_n_tasks(count: int) -> None:
    spec = CHANGED_SINCE[0]
    streams = [routes.Stream(s.collection, s) for s in CHANGED_SINCE] + [
        routes.Stream(f"{spec.collection}/{n}", spec, shard=n) for n in range(16)
    ]
    split = [job.task_streams(streams, i, count) for i in range(count)]
    owned = [s.key for part in split for s in part]
    assert sorted(owned) == sorted(s.key for s in streams)
    # A shard's stream goes to the task its number names: the split is stable.
    for i, part in enumerate(split):
        assert all(s.shard % count == i for s in part if s.shard is not None)


@pytest.mark.parametrize(
    "env, problem",
    [
        ({"CLOUD_RUN_TASK_INDEX": "2", "CLOUD_RUN_TASK_COUNT": "2"}, "is not a task of"),
        ({"CLOUD_RUN_TASK_COUNT": "x"}, "must be integers"),
        ({"CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "2"}, "CLOUD_RUN_EXECUTION"),
    ],
)
def test_unusable_task_variables_are_refused(env: dict[str, str], problem: str) -> None:
    with pytest.raises(job.TaskError, match=problem):
        job.task_position(env)


def test_bad_dates_exit_2_before_touching_storage(capsys: pytest.CaptureFixture[str]) -> None:
    assert job.main(["--start", "2026-01-02"], env={}) == 2
    assert '"status":"bad_arguments"' in capsys.readouterr().out
