"""Duplicate-processing protection: the task lock and the completion markers, with real workers."""

import os
import signal
import uuid

import pytest
import redis
from redis.exceptions import LockNotOwnedError

from {{ cookiecutter.package_name }}.core import locks

from ..support.redelivery import redeliver_unacknowledged
from ..support.runs import overlaps, runs_of
from ..support.workers import Fleet, wait_for

ENV = {
    "ECS_STOP_TIMEOUT": "30",
    "TASK_SOFT_TIME_LIMIT": "7",
    "TASK_TIME_LIMIT": "8",
    "LOCK_TTL": "2",
    "WORKER_CONCURRENCY": "1",
}


def skipped(fleet: Fleet, task_id: str) -> bool:
    """Whether a worker acknowledged a delivery of ``task_id`` without running it."""
    return any(worker.events("task.skipped", task_id=task_id) for worker in fleet.workers)


@pytest.mark.slow
def test_same_task_delivered_twice_at_once_runs_once(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    for _ in range(2):
        fleet.start_ready(ENV)
    task_id = uuid.uuid4().hex
    for _ in range(2):
        fleet.app.send_task("probe.locked_work", args=[item, 2.0], task_id=task_id)

    wait_for(lambda: skipped(fleet, task_id), 30, "the second delivery to be skipped")
    runs = runs_of(redis_client, item)
    assert [run.completed for run in runs] == [True]
    assert overlaps(runs) == []


def test_lock_taken_over_after_expiry_is_not_released_or_extended_by_first_owner(
    redis_client: redis.Redis, item: str
) -> None:
    name = locks.PREFIX + item
    with locks.task_lock(item, ttl=5) as first:
        # The first owner stalls past its TTL: Redis expires the key, another run takes it.
        redis_client.pexpire(name, 1)
        wait_for(lambda: not redis_client.exists(name), 5, "the lock to expire")
        with locks.task_lock(item, ttl=5) as second:
            with pytest.raises(LockNotOwnedError):
                first.extend(5, replace_ttl=True)
            with pytest.raises(LockNotOwnedError):
                first.release()
            assert redis_client.get(name) == second.local.token.decode()
    assert not redis_client.exists(name)


def test_lock_held_elsewhere_waits_without_using_up_retries(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    fleet.start_ready({**ENV, "TASK_MAX_RETRIES": "0"})
    with locks.task_lock(f"probe.locked_by_item:item:{item}"):
        fleet.app.send_task("probe.locked_by_item", args=[item, 0.1])

        def waited_twice() -> bool:
            return sum(len(worker.events("task.lock_held")) for worker in fleet.workers) >= 2

        wait_for(waited_twice, 30, "the task to find the lock held twice")
        assert runs_of(redis_client, item) == []
    wait_for(lambda: any(r.completed for r in runs_of(redis_client, item)), 30, "the run")
    (run,) = runs_of(redis_client, item)
    assert run.fields["retries"] == "0"


@pytest.mark.slow
def test_killed_holder_lock_expires_then_task_runs_again(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    workers = {worker.hostname: worker for worker in (fleet.start(ENV), fleet.start(ENV))}
    for worker in workers.values():
        fleet.wait_ready(worker)
    fleet.app.send_task("probe.locked_by_item", args=[item, 4.0])
    (started,) = wait_for(lambda: runs_of(redis_client, item), 30, "the first run to start")
    holder = workers.pop(started.fields["hostname"])
    (other,) = workers.values()
    os.killpg(holder.pid, signal.SIGKILL)
    redeliver_unacknowledged(fleet.app)

    wait_for(lambda: any(r.completed for r in runs_of(redis_client, item)), 60, "a complete run")
    first, *later = runs_of(redis_client, item)
    assert not first.completed
    assert [run.fields["hostname"] for run in later] == [other.hostname]
    assert overlaps([first, *later]) == []


def test_redelivered_completed_task_is_not_run_again(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    fleet.start_ready(ENV)
    task_id = uuid.uuid4().hex
    fleet.app.send_task("probe.work", args=[item, 0.1], task_id=task_id)
    wait_for(lambda: any(r.completed for r in runs_of(redis_client, item)), 30, "the first run")
    fleet.app.send_task("probe.work", args=[item, 0.1], task_id=task_id)

    wait_for(lambda: skipped(fleet, task_id), 30, "the redelivery to be skipped")
    assert len(runs_of(redis_client, item)) == 1


def test_worker_refuses_to_start_without_redis(fleet: Fleet) -> None:
    # Waited for (briefly here) before the refusal: tests/core/test_startup.py shows the wait.
    worker = fleet.start({"REDIS_URL": "redis://127.0.0.1:1/0", "STARTUP_DEPENDENCY_TIMEOUT": "1"})
    wait_for(lambda: not worker.alive(), 30, "the worker to exit")
    assert worker.process.returncode == 78
    assert "REDIS_URL='redis://127.0.0.1:1/0': cannot reach Redis" in worker.output()
