"""A soft time limit that fires inside a finalizer stops the task; other unraisables do not."""

import pytest
import redis

from ..support.runs import runs_of
from ..support.workers import Fleet, wait_for

SOFT_LIMIT = 1.0
ENV = {
    "ECS_STOP_TIMEOUT": "60",
    "TASK_SOFT_TIME_LIMIT": f"{SOFT_LIMIT:g}",
    "TASK_TIME_LIMIT": "30",
    "WORKER_CONCURRENCY": "1",
}
FINALIZER_SECONDS = 8.0


@pytest.mark.slow
def test_soft_limit_inside_finalizer_ends_the_run_and_redelivers(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    worker = fleet.start_ready(ENV)
    fleet.app.send_task("probe.soft_limit_in_finalizer", args=[item, FINALIZER_SECONDS])

    def redelivered_and_done() -> bool:
        runs = runs_of(redis_client, item)
        return len(runs) == 2 and runs[1].completed

    wait_for(redelivered_and_done, 30, "the task to be redelivered and completed")
    first, second = runs_of(redis_client, item)
    assert not first.completed
    assert "ran_past_finalizer" not in first.fields
    assert first.last - first.start < SOFT_LIMIT + 2, "the task ran on after its soft time limit"
    assert second.start - first.last < 10
    assert worker.events("task.soft_limit_swallowed")


def test_unrelated_unraisable_exception_keeps_the_process(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    worker = fleet.start_ready(ENV)
    for _ in range(2):
        fleet.app.send_task("probe.unrelated_unraisable", args=[item])

    def both_done() -> bool:
        runs = runs_of(redis_client, item)
        return len(runs) == 2 and all(run.completed for run in runs)

    wait_for(both_done, 30, "both tasks to complete")
    first, second = runs_of(redis_client, item)
    assert first.pid == second.pid, "the pool process was replaced"
    assert "ValueError: an unrelated error inside a finalizer" in worker.output()
