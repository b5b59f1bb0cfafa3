"""A Redis or database outage under load loses nothing: every task completes once it is back.

The Redis at REDIS_URL (locks, completion markers, delivery counts, and here the probe tasks'
own records) and the database are private instances that the tests stop and start again.
"""

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from ..support.private_services import PrivateRedis, private_postgres, private_redis
from ..support.runs import runs_of
from ..support.workers import Fleet, wait_for

TASKS = 100
OUTAGE = 10.0
ENV = {
    "WORKER_CONCURRENCY": "2",
    # Short countdowns keep the test short; the retries still outlast the outage.
    "TASK_RETRY_FIRST_COUNTDOWN": "2",
    "TASK_RETRY_BACKOFF_MAX": "16",
}


def kill_and_restart(server: PrivateRedis) -> None:
    server.kill()
    time.sleep(OUTAGE)  # the outage itself, not a wait for a condition
    server.start()


def freeze_and_thaw(server: PrivateRedis) -> None:
    server.freeze()
    time.sleep(OUTAGE)  # the outage itself, not a wait for a condition
    server.thaw()


@pytest.mark.slow
@pytest.mark.parametrize("outage", [kill_and_restart, freeze_and_thaw], ids=["killed", "frozen"])
def test_redis_outage_under_load_loses_nothing(
    fleet: Fleet, tmp_path: Path, outage: Callable[[PrivateRedis], None]
) -> None:
    with private_redis(appendonly=True, dir=tmp_path) as server:
        env = {**ENV, "REDIS_URL": server.url}
        fleet.wait_ready(fleet.start(env))
        fleet.wait_ready(fleet.start(env))
        client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=5)
        items = [f"outage-{index}" for index in range(TASKS)]
        for item in items:
            fleet.app.send_task("probe.work", args=[item, random.uniform(0.1, 0.3)])

        def completed() -> list[str]:
            with_runs = [(item, runs_of(client, item)) for item in items]
            return [item for item, runs in with_runs if any(run.completed for run in runs)]

        wait_for(lambda: len(completed()) >= TASKS // 4, 30, "a quarter of the tasks to complete")
        outage(server)
        try:
            wait_for(lambda: len(completed()) == TASKS, 120, "every task to complete")
        except AssertionError:
            missing = sorted(set(items) - set(completed()))
            raise AssertionError(
                f"{len(missing)} of {TASKS} never completed: {missing[:5]}"
            ) from None
        assert all(worker.alive() for worker in fleet.workers), "a worker died in the outage"


@pytest.mark.slow
def test_database_outage_under_load_runs_every_task_once(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    with private_postgres() as database:
        database.start()
        env = {**ENV, "DATABASE_URL": database.url}
        fleet.wait_ready(fleet.start(env))
        fleet.wait_ready(fleet.start(env))
        items = [f"{item}-{index}" for index in range(TASKS)]
        for name in items:
            fleet.app.send_task("probe.reads_database", args=[name])

        def runs() -> list[int]:
            return [len(runs_of(redis_client, name)) for name in items]

        wait_for(lambda: sum(map(bool, runs())) >= TASKS // 4, 30, "a quarter of the tasks")
        database.stop()
        time.sleep(OUTAGE)  # the outage itself, not a wait for a condition
        database.start()
        wait_for(lambda: all(runs()), 120, "every task to run")
    assert set(runs()) == {1}, "a task ran twice"
