"""A stopped worker leaves when its work is done: as soon as its running task ends, at once when
idle, and never later than the shutdown window, after which what still runs is handed back.

Each worker is stopped as ECS stops it (SIGTERM to the main process, SIGKILL to the group at the
stop timeout), and the time from SIGTERM to its exit is measured.
"""

import time
import uuid

import pytest
import redis

from {{ cookiecutter.package_name }}.core import broker
from {{ cookiecutter.package_name }}.core.dead_letters import store

from ..conftest import QUEUE
from ..support.runs import overlaps, runs_of
from ..support.workers import Fleet, Worker, wait_for

pytestmark = pytest.mark.slow

STOP_TIMEOUT = 30.0
#: The targets: a busy worker exits within its task's remaining time plus this, an idle one
#: within this.
MARGIN = 3.0
TASK_SECONDS = 4.0
ENV = {
    "ECS_STOP_TIMEOUT": f"{STOP_TIMEOUT:g}",
    "TASK_SOFT_TIME_LIMIT": "9",
    "TASK_TIME_LIMIT": "10",
    "WORKER_CONCURRENCY": "1",
}
#: A shutdown window shorter than the task: the task is cut off and handed back.
SHORT_WINDOW = 1.5


def running(client: redis.Redis, item: str, worker: Worker) -> float | None:
    """When the worker's run of ``item`` started, once it has started."""
    runs = [run for run in runs_of(client, item) if run.fields.get("hostname") == worker.hostname]
    return runs[0].start if runs else None


def test_busy_worker_stops_when_its_task_ends(fleet: Fleet, redis_client: redis.Redis) -> None:
    worker = fleet.start_ready(ENV)
    item = uuid.uuid4().hex
    fleet.app.send_task("probe.work", args=[item, TASK_SECONDS])
    started = wait_for(lambda: running(redis_client, item, worker), 30, "the task to start")

    remaining = TASK_SECONDS - (time.time() - started)
    stop = worker.stop_like_ecs(STOP_TIMEOUT)

    runs = runs_of(redis_client, item)
    assert [run.completed for run in runs] == [True], "the task did not finish exactly once"
    assert (stop.exit_code, stop.sigkilled) == (0, False), stop
    assert stop.seconds <= remaining + MARGIN, (
        f"stopped {stop.seconds:.1f} s after SIGTERM; the task needed {remaining:.1f} s more"
    )


def test_idle_worker_stops_at_once(fleet: Fleet) -> None:
    worker = fleet.start_ready(ENV)
    stop = worker.stop_like_ecs(STOP_TIMEOUT)
    assert (stop.exit_code, stop.sigkilled) == (0, False), stop
    assert stop.seconds <= MARGIN, f"an idle worker took {stop.seconds:.1f} s to stop"


@pytest.mark.skipif(
    broker.NAME != "redis", reason="RabbitMQ holds countdown messages itself (delayed delivery)"
)
def test_idle_worker_hands_back_its_countdown_message(
    fleet: Fleet, redis_client: redis.Redis
) -> None:
    worker = fleet.start_ready(ENV)
    item = uuid.uuid4().hex
    fleet.app.send_task("probe.work", args=[item, 0.1], countdown=5)
    inspect = fleet.app.control.inspect([worker.hostname], timeout=0.5)
    wait_for(lambda: (inspect.scheduled() or {}).get(worker.hostname), 30, "the worker to hold it")
    assert redis_client.llen(QUEUE) == 0, "the message is still in the queue"

    stop = worker.stop_like_ecs(STOP_TIMEOUT)
    assert (stop.exit_code, stop.sigkilled) == (0, False), stop
    assert stop.seconds <= MARGIN, stop

    fleet.start_ready(ENV)
    wait_for(lambda: any(r.completed for r in runs_of(redis_client, item)), 30, "the task to run")
    assert len(runs_of(redis_client, item)) == 1


def test_task_longer_than_the_window_is_handed_back(
    fleet: Fleet, redis_client: redis.Redis
) -> None:
    env = {**ENV, "WORKER_SOFT_SHUTDOWN_TIMEOUT": f"{SHORT_WINDOW:g}"}
    worker = fleet.start_ready(env)
    item = uuid.uuid4().hex
    sent = fleet.app.send_task("probe.work", args=[item, TASK_SECONDS])
    wait_for(lambda: running(redis_client, item, worker), 30, "the task to start")

    stop = worker.stop_like_ecs(STOP_TIMEOUT)
    assert not stop.sigkilled, stop
    assert SHORT_WINDOW <= stop.seconds <= SHORT_WINDOW + MARGIN, stop
    [interrupted] = runs_of(redis_client, item)
    assert not interrupted.completed, "the task was not cut off at the end of the window"

    fleet.start_ready(env)
    wait_for(
        lambda: any(run.completed for run in runs_of(redis_client, item)),
        30,
        "the handed-back task to complete on another worker",
    )
    runs = runs_of(redis_client, item)
    assert [run.completed for run in runs] == [False, True]
    assert overlaps(runs) == []
    letters = [letter for letter in store.records(fleet.app, QUEUE) if letter.id == sent.id]
    assert letters == [], "the handed-back task was dead-lettered"
