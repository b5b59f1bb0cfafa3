"""ECS deployment emulation: the workers of two queues replaced again and again while tasks run.

Each queue is deployed as its own ECS service: its workers run the command its task definition
would give them and stop within its own stop timeout (the tests' probe queues: short windows so
the test takes seconds, not minutes; FAST also reserves a second message per process, which a
stop must hand back). Each deployment starts the replacement first (as ECS does with
maximumPercent 200), waits until the old worker is in the middle of a long task, then stops it as
ECS does: SIGTERM to the main process, SIGKILL to the whole group after the queue's stop timeout.
"""

import os
import uuid
from pathlib import Path

import pytest
import redis
from celery import Celery

from {{ cookiecutter.package_name }}.core import config
from {{ cookiecutter.package_name }}.core.dead_letters import store

from ..support import probe_queues
from ..support.probe_queues import FAST, SLOW
from ..support.runs import Run, overlaps, runs_of
from ..support.workers import Fleet, Worker, wait_for

pytestmark = pytest.mark.slow

#: Running tasks get 1.5 s after SIGTERM, then are cut off and handed back. The queues' hard
#: limit (5 s) leaves every task over a second of headroom, so no task ends by its time limit and
#: every missing task is a lost one.
SOFT_SHUTDOWN = 1.5
ENV = {"WORKER_SOFT_SHUTDOWN_TIMEOUT": f"{SOFT_SHUTDOWN:g}"}
WORKERS = 2
#: Per queue.
DEPLOYMENTS = 3
#: Task lengths from 0.3 s to 3.3 s: the longer ones outlast the soft shutdown and are cancelled.
#: Enough work that the queue outlasts the deployments, even on a slow machine.
DURATIONS = [0.3 + (index % 7) * 0.5 for index in range(45)]
#: Tasks that outlast the soft shutdown when their worker is stopped 0.2 s into them: each
#: deployment waits for one, so that every deployment interrupts a task.
LONG = SOFT_SHUTDOWN + 0.5
#: An interrupted task must run again within this many seconds: behind its queue's backlog (a
#: task cut off on Redis goes back to the end of its queue), never after a broker's timeout
#: (Redis: 30 s for a fetch orphaned by a dead worker, 450 s of visibility).
REDELIVERY_BOUND = 25.0


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
    redis_client: redis.Redis, probe_publisher: Celery, tmp_path: Path
) -> None:
    fleet = Fleet(os.environ, tmp_path, probe_publisher)
    try:
        check_deployments(fleet, redis_client)
    finally:
        fleet.kill_all()


def check_deployments(fleet: Fleet, redis_client: redis.Redis) -> None:
    queues = (FAST, SLOW)
    workers: dict[str, list[Worker]] = {
        queue.name: [fleet.start_queue(queue, probe_queues.APP, ENV) for _ in range(WORKERS)]
        for queue in queues
    }
    for started in workers.values():
        for worker in started:
            fleet.wait_ready(worker)
    items = [uuid.uuid4().hex for _ in DURATIONS]
    for index, (item, seconds) in enumerate(zip(items, DURATIONS, strict=True)):
        queue = queues[index % 2].name
        fleet.app.send_task("probe.work", args=[item, seconds], queue=queue)

    long_items = [item for item, seconds in zip(items, DURATIONS, strict=True) if seconds > LONG]

    def unfinished(among: list[str] = items) -> dict[str, list[Run]]:
        runs = {item: runs_of(redis_client, item) for item in among}
        return {item: runs_ for item, runs_ in runs.items() if not any(r.completed for r in runs_)}

    stops = []
    for _ in range(DEPLOYMENTS):
        for queue in queues:
            victim = workers[queue.name].pop(0)
            replacement = fleet.start_queue(queue, probe_queues.APP, ENV)
            wait_for(
                lambda victim=victim: (
                    running_on(redis_client, long_items, victim.hostname, 0.2)
                    or not unfinished(long_items)
                ),
                30,
                f"{victim.hostname} to be in the middle of a long task",
            )
            stops.append(victim.stop_like_ecs(queue.stop_timeout))
            fleet.wait_ready(replacement)
            workers[queue.name].append(replacement)

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
    for queue in queues:
        name = config.current().broker_queue(queue.name)
        assert store.records(fleet.app, name) == [], f"an interrupted task of {name} dead-lettered"


def redelivery_delay(interrupted: Run, runs: list[Run]) -> float:
    """Seconds from an interrupted run's last sign of life to the next run of the same task."""
    later = [run.start for run in runs if run.start > interrupted.start]
    return min(later) - interrupted.last
