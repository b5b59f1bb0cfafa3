"""ECS deployment emulation: workers replaced again and again while tasks run.

Workers run with the task definition's command and environment, with a short stop timeout so the
test takes seconds, not minutes. Each deployment starts the replacement first (as ECS does with
maximumPercent 200), waits until the old worker is in the middle of a long task, then stops it as
ECS does: SIGTERM to the main process, SIGKILL to the whole group after the stop timeout.
"""

import uuid

import pytest
import redis

from {{ cookiecutter.package_name }}.core.dead_letters import store

from ..conftest import QUEUE
from ..support.runs import Run, overlaps, runs_of
from ..support.workers import Fleet, wait_for

pytestmark = pytest.mark.slow

STOP_TIMEOUT = 10.0
SOFT_SHUTDOWN = 1.5
#: The hard limit fits the 5 s shutdown window; the soft limit leaves every task over a second of
#: headroom, so no task ends by its time limit and every missing task is a lost one.
ENV = {
    "ECS_STOP_TIMEOUT": f"{STOP_TIMEOUT:g}",
    "WORKER_SOFT_SHUTDOWN_TIMEOUT": f"{SOFT_SHUTDOWN:g}",
    "TASK_SOFT_TIME_LIMIT": "4.5",
    "TASK_TIME_LIMIT": "5",
    "WORKER_CONCURRENCY": "1",
}
WORKERS = 3
DEPLOYMENTS = 6
#: Task lengths from 0.3 s to 3.3 s: the longer ones outlast the soft shutdown and are cancelled.
#: Enough work that the queue outlasts the deployments, even on a slow machine.
DURATIONS = [0.3 + (index % 7) * 0.5 for index in range(45)]
#: Tasks that outlast the soft shutdown when their worker is stopped 0.2 s into them: each
#: deployment waits for one, so that every deployment interrupts a task.
LONG = SOFT_SHUTDOWN + 0.5
#: An interrupted task must run again within this many seconds (not after a visibility timeout).
REDELIVERY_BOUND = 10.0


def running_on(client: redis.Redis, items: list[str], hostname: str, min_age: float) -> bool:
    """Whether ``hostname`` is in the middle of a task that started at least ``min_age`` ago."""
    return any(
        run.fields.get("hostname") == hostname
        and not run.completed
        and run.last - run.start >= min_age
        for item in items
        for run in runs_of(client, item)
    )


def test_deployments_lose_no_task_and_never_run_one_twice_at_once(
    fleet: Fleet, redis_client: redis.Redis, celery_app: object
) -> None:
    workers = [fleet.start(ENV) for _ in range(WORKERS)]
    for worker in workers:
        fleet.wait_ready(worker)
    items = [uuid.uuid4().hex for _ in DURATIONS]
    for item, seconds in zip(items, DURATIONS, strict=True):
        fleet.app.send_task("probe.work", args=[item, seconds])

    long_items = [item for item, seconds in zip(items, DURATIONS, strict=True) if seconds > LONG]

    def unfinished(among: list[str] = items) -> dict[str, list[Run]]:
        runs = {item: runs_of(redis_client, item) for item in among}
        return {item: runs_ for item, runs_ in runs.items() if not any(r.completed for r in runs_)}

    stops = []
    for _ in range(DEPLOYMENTS):
        victim = workers.pop(0)
        replacement = fleet.start(ENV)
        wait_for(
            lambda victim=victim: (
                running_on(redis_client, long_items, victim.hostname, 0.2)
                or not unfinished(long_items)
            ),
            30,
            f"{victim.hostname} to be in the middle of a long task",
        )
        stops.append(victim.stop_like_ecs(STOP_TIMEOUT))
        fleet.wait_ready(replacement)
        workers.append(replacement)

    try:
        wait_for(lambda: not unfinished(), 60, "every task to complete once")
    except AssertionError:
        pytest.fail(f"tasks lost or stuck, with their runs: {unfinished()}\nstops: {stops}")

    runs = {item: runs_of(redis_client, item) for item in items}
    assert [stop for stop in stops if stop.sigkilled] == [], "a worker outlived the stop timeout"
    assert {item: pairs for item, runs_ in runs.items() if (pairs := overlaps(runs_))} == {}
    interrupted = [run for runs_ in runs.values() for run in runs_ if not run.completed]
    assert interrupted, "no deployment interrupted a task: the test proved nothing"
    late = [run for run in interrupted if redelivery_delay(run, runs[run.item]) > REDELIVERY_BOUND]
    assert late == [], f"interrupted tasks waited more than {REDELIVERY_BOUND:g} s to run again"
    assert store.records(fleet.app, QUEUE) == [], "an interrupted task was dead-lettered"


def redelivery_delay(interrupted: Run, runs: list[Run]) -> float:
    """Seconds from an interrupted run's last sign of life to the next run of the same task."""
    later = [run.start for run in runs if run.start > interrupted.start]
    return min(later) - interrupted.last
