"""Poison tasks: bounded redelivery, the dead-letter store, and the command line over it."""

import datetime
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
import redis

from {{ cookiecutter.package_name }}.core import broker, config
from {{ cookiecutter.package_name }}.core.dead_letters import store
{%- if cookiecutter.broker == 'rabbitmq' %}
from {{ cookiecutter.package_name }}.core.queues import broker_name
{%- endif %}

from ..conftest import {% if cookiecutter.broker == 'rabbitmq' %}NAMESPACE, {% endif %}QUEUE
from ..support.runs import runs_of
from ..support.workers import PROJECT, Fleet, wait_for

#: The session's queue is declared with the default limit (a RabbitMQ queue's arguments cannot
#: change), so the tests use the default.
LIMIT = config.current().delivery_limit
ENV = {"WORKER_CONCURRENCY": "2"}
#: A broker URL and a Redis URL on a port nothing listens on.
UNREACHABLE = {
    "CELERY_BROKER_URL": {
        "rabbitmq": "amqp://guest:guest@127.0.0.1:1//",
        "redis": "redis://127.0.0.1:1/0",
    }[broker.NAME],
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


def dead_letters(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m {{ cookiecutter.package_name }}.core.dead_letters`` with this test session's environment."""
    return subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}.core.dead_letters", *args],
        env={**os.environ, **ENV, **(env or {})},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def listed(ids: list[str]) -> list[dict[str, Any]]:
    """What ``list`` prints for the dead letters ``ids`` (other tests leave theirs, too)."""
    result = dead_letters("list")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    return [record for record in records if record["id"] in ids]


def dead_letter_ids(fleet: Fleet, ids: list[str]) -> list[str]:
    return sorted(letter.id for letter in store.records(fleet.app, QUEUE) if letter.id in ids)


def completed(client: redis.Redis, item: str) -> bool:
    return any(run.completed for run in runs_of(client, item))


@pytest.mark.slow
def test_task_that_kills_its_worker_is_dead_lettered_then_requeued_once_fixed(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    fleet.start_ready(ENV)
    poison = uuid.uuid4().hex
    fleet.app.send_task("probe.kills_its_process", args=[item], task_id=poison)
    ordinary = [f"{item}-{index}" for index in range(20)]
    for name in ordinary:
        fleet.app.send_task("probe.work", args=[name, 0.05])

    wait_for(
        lambda: dead_letter_ids(fleet, [poison]) == [poison],
        60,
        "the poison task to be dead-lettered",
    )
    wait_for(
        lambda: all(completed(redis_client, name) for name in ordinary),
        60,
        "the 20 ordinary tasks to complete",
    )
    runs = runs_of(redis_client, item)
    assert len(runs) == LIMIT, f"delivered {len(runs)} times, the limit is {LIMIT}"
    assert not any(run.completed for run in runs)
    [record] = listed([poison])
    assert record == {
        "id": poison,
        "task": "probe.kills_its_process",
        "args": [item],
        "kwargs": {},
        "deliveries": LIMIT,
        "reason": "delivery_limit",
        "error": f"DeliveryLimitExceeded: {LIMIT} deliveries ended without the task finishing "
        f"(the queue's delivery_limit={LIMIT})",
        "queue": QUEUE,
        "dead_lettered_at": record["dead_lettered_at"],
    }
    assert record["dead_lettered_at"].startswith(str(datetime.datetime.now(datetime.UTC).year))

    redis_client.set(f"probe:fixed:{item}", 1)
    result = dead_letters("requeue", poison)
    assert (result.returncode, result.stdout) == (0, f"requeued {poison}\n"), result.stderr
    wait_for(lambda: completed(redis_client, item), 30, "the requeued task to run to its end")
    assert listed([poison]) == []


def test_rejected_tasks_are_dead_lettered_and_only_known_ids_requeued(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    fleet.start_ready(ENV)
    ids = sorted(uuid.uuid4().hex for _ in range(2))
    for task_id in ids:
        fleet.app.send_task("probe.rejects", args=[item], task_id=task_id)
    wait_for(
        lambda: dead_letter_ids(fleet, ids) == ids, 30, "both rejected tasks to be dead-lettered"
    )
    assert [(record["reason"], record["args"], record["error"]) for record in listed(ids)] == [
        ("rejected", [item], f"Reject: {item} cannot be processed")
    ] * 2

    result = dead_letters("requeue", ids[0], "no-such-id")
    assert result.returncode == 1
    assert "no dead letter with id 'no-such-id'" in result.stderr
    assert dead_letter_ids(fleet, ids) == ids, "a refused requeue changed the dead letters"
    assert len(runs_of(redis_client, item)) == 2

    stored = len(store.records(fleet.app, QUEUE))
    result = dead_letters("--queue", config.current().queues[0].name, "purge")
    purged = (result.returncode, result.stdout)
    assert purged == (0, f"purged {stored} from {QUEUE}\n"), result.stderr
    assert listed(ids) == []


@pytest.mark.parametrize("command", [["list"], ["requeue", "--all"], ["purge"]])
def test_unreachable_store_is_a_clear_error(command: list[str]) -> None:
    result = dead_letters(*command, env=UNREACHABLE)
    assert result.returncode == 69, result.stderr
    assert "cannot reach" in result.stderr
    assert "127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["requeue"], ["requeue", "--all", "some-id"], ["drop"]])
def test_bad_usage_is_refused(command: list[str]) -> None:
    result = dead_letters(*command)
    assert result.returncode == 2
    assert "usage:" in result.stderr
{%- if cookiecutter.broker == 'rabbitmq' %}


def declared_elsewhere(fleet: Fleet, delivery_limit: int | None) -> tuple[str, str]:
    """A namespace of its own whose default queue already exists: a quorum queue with
    ``delivery_limit``, or a classic queue."""
    namespace = f"{NAMESPACE}-{uuid.uuid4().hex[:6]}"
    queue = broker_name(namespace, config.current().queues[0].name)
    arguments = broker.queue_arguments(delivery_limit, queue) if delivery_limit else {}
    with fleet.app.connection_for_write() as connection:
        connection.default_channel.queue_declare(
            queue, durable=True, auto_delete=False, arguments=arguments
        )
    return namespace, queue


def refused_in(fleet: Fleet, namespace: str, queue: str) -> str:
    """The output of a worker of ``namespace``, which must have refused to start."""
    try:
        worker = fleet.start({"BROKER_NAMESPACE": namespace})
        wait_for(lambda: not worker.alive(), 30, "the worker to exit")
    finally:
        with fleet.app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)
    assert worker.process.returncode == 78
    return worker.output()


def test_worker_whose_queue_exists_with_another_delivery_limit_refuses_to_start(
    fleet: Fleet,
) -> None:
    assert store.queue_problems(fleet.app) == []  # the session's queue, with the defined limit
    name = config.current().queues[0].name
    output = refused_in(fleet, *declared_elsewhere(fleet, LIMIT + 1))
    assert f"queues.py {name}.delivery_limit={LIMIT}: RabbitMQ refused queue" in output
    assert "inequivalent arg 'x-delivery-limit'" in output


def test_worker_refuses_a_classic_queue_of_the_same_name(fleet: Fleet) -> None:
    namespace, queue = declared_elsewhere(fleet, None)
    output = refused_in(fleet, namespace, queue)
    name = config.current().queues[0].name
    assert f"queues.py {name} (on the broker {queue!r}): the queue exists with other" in output
{%- endif %}
