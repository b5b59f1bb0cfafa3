"""The newsletter's fan-out and batching through a broker restart in the middle of their publishing.

A private broker (``support/private_services.py``) is restarted while a run publishes: every user
must get the newsletter exactly once (the placeholder ``deliver`` counts sends per user in Redis)
and the run must drain, within a deadline. What the example does to get there (retries,
progress, derived task ids, the per-user marker) is not asserted, only the outcome.
"""

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
{% if cookiecutter.broker == 'redis' %}
from {{ cookiecutter.package_name }}.core.broker import FETCH_LISTS
{%- endif %}
from {{ cookiecutter.package_name }}.tasks.newsletter import deliveries_key, sent_key

from .conftest import QUEUE
from .support.databases import fresh_database
from .support.faults import private_app
{%- if cookiecutter.broker == 'rabbitmq' %}
from .support.private_services import PrivateRabbitMQ, private_rabbitmq
{%- else %}
from .support.private_services import PrivateRedis, private_redis
from .support.redelivery import redeliver_unacknowledged
{%- endif %}
from .support.workers import Fleet, wait_for
from .users import seed_users

pytestmark = pytest.mark.slow

#: 2,500 users keep each test under a minute; FAULT_TEST_USERS=20000 runs the full-size check.
USERS = int(os.environ.get("FAULT_TEST_USERS", "2500"))
ENV = {"WORKER_CONCURRENCY": "2", "LOCK_TTL": "2"}
#: Seconds the broker stays down.
OUTAGE = 3.0
#: The whole run, restart included, must end within this: a minute, plus 10 ms a user (the two
#: workers' 4 processes send to about 200 users a second on 2 cores).
DEADLINE = 60 + USERS / 100
{%- if cookiecutter.broker == 'rabbitmq' %}


@pytest.fixture
def node() -> Iterator[PrivateRabbitMQ]:
    # A node (and port) per test: kombu's connection pools are keyed by URL and would hand a
    # test a connection to the previous test's node.
    with private_rabbitmq("newsletter-faults") as started:
        yield started


def restart(node: PrivateRabbitMQ) -> None:
    node.stop_app()
    time.sleep(OUTAGE)  # the outage itself, not a wait for something
    node.start_app()


def drained(app: object, node: PrivateRabbitMQ) -> bool:
    with app.connection_for_write() as connection:  # type: ignore[attr-defined]
        _, messages, _ = connection.default_channel.queue_declare(QUEUE, passive=True)
    return not messages


def restore_stranded(app: object, node: PrivateRabbitMQ) -> int:
    return 0


def stranded(app: object, node: PrivateRabbitMQ) -> bool:
    """RabbitMQ redelivers what a lost connection held by itself: nothing is ever stranded."""
    return False
{%- else %}


@pytest.fixture
def node() -> Iterator[PrivateRedis]:
    # A server (and port) per test: kombu's connection pools are keyed by URL and would hand a
    # test a connection to the previous test's server.
    with private_redis(appendonly=True, appendfsync="always") as started:
        yield started


def restart(node: PrivateRedis) -> None:
    node.kill()
    time.sleep(OUTAGE)  # the outage itself, not a wait for something
    node.restart()


def drained(app: object, node: PrivateRedis) -> bool:
    client = node.client()
    fetching = client.zrange(FETCH_LISTS, 0, -1)
    return not any(client.llen(key) for key in [QUEUE, *fetching]) and not client.hlen("unacked")


def restore_stranded(app: object, node: PrivateRedis) -> int:
    """Restore now what the visibility timeout would restore in minutes; return how many."""
    held = int(node.client().hlen("unacked"))
    redeliver_unacknowledged(app)
    return held


#: Held messages seen with an idle fleet: their keys and when they were first seen so.
_held_since: dict[frozenset[str], float] = {}


def stranded(app: object, node: PrivateRedis) -> bool:
    """The same messages held unacknowledged for 2 s while no worker had anything: their tasks
    ended when Redis died, and they would come back only after the visibility timeout."""
    client = node.client()
    held = frozenset(client.hkeys("unacked"))
    if client.llen(QUEUE) or not held:
        return False
    # A connection of its own: the app's pooled ones died with the broker.
    with app.connection_for_write() as connection:  # type: ignore[attr-defined]
        inspect = app.control.inspect(timeout=1, connection=connection)  # type: ignore[attr-defined]
        busy = [inspect.active() or {}, inspect.reserved() or {}, inspect.scheduled() or {}]
    if any(tasks for by_worker in busy for tasks in by_worker.values()):
        _held_since.clear()
        return False
    # A message in flight between the queue and a worker is held for a moment only.
    return time.monotonic() - _held_since.setdefault(held, time.monotonic()) >= 2
{%- endif %}


def sends(client: redis.Redis, newsletter: str) -> dict[int, int]:
    counts = client.hgetall(deliveries_key(newsletter))
    return {int(user): int(count) for user, count in counts.items()}


def run_through_a_restart(
    *,
    fleet: Fleet,
    node: object,
    redis_client: redis.Redis,
    tmp_path: Path,
    task: str,
    mid_publish: Callable[[str], bool],
) -> dict[int, int]:
    """Start ``task`` over USERS users; restart the broker once ``mid_publish(run)``; drain."""
    newsletter = uuid.uuid4().hex
    with fresh_database("sqlite", tmp_path) as url:
        seed_users(url, USERS)
        for _ in range(2):
            fleet.start({**ENV, "CELERY_BROKER_URL": node.url, "DATABASE_URL": url})  # type: ignore[attr-defined]
        for worker in fleet.workers:
            fleet.wait_ready(worker, timeout=60)
        began = time.monotonic()
        run = uuid.uuid4().hex
        fleet.app.send_task(task, args=[newsletter], task_id=run)
        wait_for(lambda: mid_publish(run), 60, f"{task} to be mid-publish")
        restart(node)  # type: ignore[arg-type]

        def everyone() -> bool:
            return len(sends(redis_client, newsletter)) == USERS

        wait_for(
            lambda: everyone() or stranded(fleet.app, node),  # type: ignore[arg-type]
            DEADLINE,
            "every user, or only stranded messages left",
            interval=0.5,
        )
        if not everyone():
            restored = restore_stranded(fleet.app, node)  # type: ignore[arg-type]
            print(f"{task}: restored {restored} message(s) held when the broker died")
        wait_for(everyone, max(DEADLINE - (time.monotonic() - began), 1), "every user")
        # Tasks that ended while the broker was down could not acknowledge their messages,
        # which come back after the visibility timeout: restore them now; they must send nothing.
        wait_for(
            lambda: drained(fleet.app, node) or stranded(fleet.app, node),  # type: ignore[arg-type]
            30,
            "the queue to drain, or only stranded messages left",
            interval=0.5,
        )
        if not drained(fleet.app, node):  # type: ignore[arg-type]
            restored = restore_stranded(fleet.app, node)  # type: ignore[arg-type]
            print(f"{task}: restored {restored} acknowledgement(s) lost with the broker")
        wait_for(lambda: drained(fleet.app, node), 30, "the queue to drain")  # type: ignore[arg-type]
        counts = sends(redis_client, newsletter)
        redis_client.delete(deliveries_key(newsletter), sent_key(newsletter))
    print(
        f"{task}: users={USERS} got_it={len(counts)} missing={USERS - len(counts)} "
        f"twice_or_more={sum(count > 1 for count in counts.values())} "
        f"seconds={time.monotonic() - began:.0f}"
    )
    return counts


def progress(client: redis.Redis, run: str, field: str) -> int:
    return int(client.hget(f"progress:{run}", field) or 0)


#: Where each run is when the broker restarts: a fan-out mid-publish, a chain a few batches in.
RUNS = [
    pytest.param(("send_newsletter_fan_out", "cursor", 2 / 5), id="fan_out"),
    pytest.param(("send_newsletter_batching", "head", 4 / 5), id="batching"),
]


@pytest.mark.parametrize("run", RUNS)
def test_a_run_through_a_broker_restart_sends_once_per_user(
    tmp_path: Path, redis_client: redis.Redis, node: object, run: tuple[str, str, float]
) -> None:
    task, field, share = run
    env = {"CELERY_BROKER_URL": node.url}  # type: ignore[attr-defined]
    fleet = Fleet(os.environ, tmp_path, private_app(env))
    try:
        counts = run_through_a_restart(
            fleet=fleet,
            node=node,
            redis_client=redis_client,
            tmp_path=tmp_path,
            task=task,
            mid_publish=lambda run_id: progress(redis_client, run_id, field) >= USERS * share,
        )
    finally:
        fleet.kill_all()
    assert counts == dict.fromkeys(range(1, USERS + 1), 1)
