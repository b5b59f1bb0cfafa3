"""Queues of the service's own: each worker consumes its queue only, tasks name theirs, each queue
dead-letters its own poison, and a plain Celery app on the same broker is left alone.

The tests' two probe queues (``support/probe_queues.py``) stand beside whatever queues.py defines.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from celery.exceptions import QueueNotFound

from {{ cookiecutter.package_name }}.core import broker, config
from {{ cookiecutter.package_name }}.core.dead_letters import store

from ..support import probe_queues
from ..support.private_services import private_rabbitmq, private_redis
from ..support.probe_queues import FAST, SLOW
from ..support.runs import runs_of
from ..support.workers import Fleet, Worker, queue_command, wait_for


def ran_on(client: redis.Redis, item: str) -> list[str]:
    """The workers that completed a run of ``item``."""
    return [run.fields["hostname"] for run in runs_of(client, item) if run.completed]


def start(fleet: Fleet, *queues: probe_queues.Queue) -> list[Worker]:
    workers = [fleet.start_queue(queue, probe_queues.APP) for queue in queues]
    for worker in workers:
        fleet.wait_ready(worker)
    return workers


def test_each_worker_runs_with_its_queues_settings(fleet: Fleet) -> None:
    """Concurrency, prefetch and time limits are the queue's, whatever the celery command's
    defaults were before the worker knew its queue."""
    workers = start(fleet, FAST, SLOW)
    for queue, worker in zip((FAST, SLOW), workers, strict=True):
        stats = fleet.app.control.inspect([worker.hostname], timeout=5).stats()[worker.hostname]
        assert stats["pool"]["max-concurrency"] == queue.concurrency
        assert stats["prefetch_count"] == queue.prefetch_multiplier * queue.concurrency
        assert stats["pool"]["timeouts"] == [queue.soft_time_limit, queue.time_limit]


def test_a_worker_of_several_queues_must_name_one(fleet: Fleet) -> None:
    command = [part for part in queue_command(FAST, probe_queues.APP) if "--queues" not in part]
    worker = fleet.launch("unnamed@test", command, None, {})
    wait_for(lambda: not worker.alive(), 30, "the worker without --queues to exit")
    assert worker.process.returncode == 78
    assert "--queues=(not given): must name one queue that queues.py defines" in worker.output()


def test_each_worker_consumes_only_its_queue(
    fleet: Fleet, probe_publisher: Celery, redis_client: redis.Redis
) -> None:
    fast, slow = start(fleet, FAST, SLOW)
    sent = {FAST.name: [], SLOW.name: []}
    for index in range(20):
        queue = (FAST, SLOW)[index % 2].name
        sent[queue].append(item := uuid.uuid4().hex)
        probe_publisher.send_task("probe.work", args=[item, 0.01], queue=queue)
    items = [*sent[FAST.name], *sent[SLOW.name]]
    wait_for(lambda: all(ran_on(redis_client, item) for item in items), 30, "every task to run")
    assert {host for item in sent[FAST.name] for host in ran_on(redis_client, item)} == {
        fast.hostname
    }
    assert {host for item in sent[SLOW.name] for host in ran_on(redis_client, item)} == {
        slow.hostname
    }


def test_a_task_runs_on_the_queue_it_names(
    fleet: Fleet, probe_publisher: Celery, redis_client: redis.Redis, item: str
) -> None:
    """``@app.task(queue="probe-slow")``: a task on another queue publishes it with ``delay``."""
    fast, slow = start(fleet, FAST, SLOW)
    probe_publisher.send_task("probe.publishes_to_slow_queue", args=[item], queue=FAST.name)
    published = f"{item}-published"
    wait_for(lambda: ran_on(redis_client, published), 30, "the named queue's task to run")
    assert ran_on(redis_client, item) == [fast.hostname]
    assert ran_on(redis_client, published) == [slow.hostname]


def test_publishing_to_a_queue_the_service_does_not_define_is_refused(
    celery_app: Celery, probe_publisher: Celery
) -> None:
    with pytest.raises(QueueNotFound, match="'no-such-queue'"):
        probe_publisher.send_task("probe.echo", args=[1], queue="no-such-queue")
    # queues.py does not define the tests' queues: the service's own app refuses them.
    with pytest.raises(QueueNotFound, match=FAST.name):
        celery_app.send_task("probe.echo", args=[1], queue=FAST.name)


def test_each_queue_dead_letters_its_own_poison(
    fleet: Fleet, probe_publisher: Celery, redis_client: redis.Redis, item: str
) -> None:
    start(fleet, FAST, SLOW)
    poison = {queue.name: uuid.uuid4().hex for queue in (FAST, SLOW)}
    for queue, task_id in poison.items():
        probe_publisher.send_task("probe.rejects", args=[item], queue=queue, task_id=task_id)

    def letters(queue: str) -> list[str]:
        name = config.current().broker_queue(queue)
        found = store.records(probe_publisher, name)
        return [letter.id for letter in found if letter.id in poison.values()]

    wait_for(
        lambda: letters(FAST.name) and letters(SLOW.name), 30, "both poison tasks dead-lettered"
    )
    assert letters(FAST.name) == [poison[FAST.name]]
    assert letters(SLOW.name) == [poison[SLOW.name]]


PLAIN_APP = """
import os
import redis
from celery import Celery

app = Celery("plain", broker=os.environ["PLAIN_BROKER_URL"])


@app.task(name="plain.record")
def record(key):
    redis.Redis.from_url(os.environ["REDIS_URL"]).rpush(key, "done")
"""


@pytest.fixture
def shared_broker() -> Iterator[str]:
    """A broker of this test's own for the plain app and the service: on the shared broker,
    the plain app would take the ``celery`` queue of whoever else uses it."""
    if broker.NAME == "rabbitmq":
        with private_rabbitmq("plainapp") as node:
            yield node.url
    else:
        with private_redis() as server:
            yield server.url


def test_a_plain_celery_app_shares_the_broker_unharmed(
    fleet: Fleet, shared_broker: str, redis_client: redis.Redis, tmp_path: Path, item: str
) -> None:
    """Celery's defaults (queue, exchange and remote control named ``celery``) beside the
    service's names on one vhost or Redis database: each runs its own tasks, nothing else."""
    (tmp_path / "plain_app.py").write_text(PLAIN_APP)
    env = {**os.environ, "PLAIN_BROKER_URL": shared_broker, "PYTHONPATH": str(tmp_path)}
    env["REDIS_URL"] = config.current().redis_url
    env = {name: value for name, value in env.items() if not name.startswith("CELERY_")}
    command = [sys.executable, "-m", "celery", "--app=plain_app", "worker", "--pool=solo"]
    command += ["--hostname", f"plain-{item}@test", "--without-mingle", "--without-gossip"]
    service_env = {"CELERY_BROKER_URL": shared_broker}
    service = Fleet(os.environ, tmp_path, probe_queues.publisher(service_env))
    plain_log = (tmp_path / "plain.log").open("wb")
    plain = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=plain_log, stderr=subprocess.STDOUT
    )
    try:
        worker = service.start(service_env)
        service.wait_ready(worker)
        plain_app = Celery("plain-client", broker=shared_broker, set_as_current=False)
        for index in range(5):
            plain_app.send_task("plain.record", args=[f"probe:plain:{item}"])
            service.app.send_task("probe.work", args=[f"{item}-{index}", 0.01])
        wait_for(lambda: redis_client.llen(f"probe:plain:{item}") == 5, 30, "the plain app's tasks")
        wait_for(
            lambda: all(ran_on(redis_client, f"{item}-{index}") for index in range(5)),
            30,
            "the service's tasks",
        )
        assert {host for index in range(5) for host in ran_on(redis_client, f"{item}-{index}")} == {
            worker.hostname
        }
        assert plain.poll() is None, (tmp_path / "plain.log").read_text()
        assert "probe.work" not in (tmp_path / "plain.log").read_text()
        assert "plain.record" not in worker.output()
    finally:
        plain.kill()
        plain.wait()
        plain_log.close()
        service.kill_all()
