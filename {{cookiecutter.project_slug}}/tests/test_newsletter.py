"""The newsletter tasks end to end: real broker, real worker, SQLite and PostgreSQL.

Every send is counted in Redis by the placeholder ``deliver`` (user id -> sends), so the tests
count executions without mocks. Redeliveries are made the way they happen: the same message (same
task id and arguments) delivered again after the first delivery did its work, its completion
marker missing as if the worker died before writing it.
"""

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from {{ cookiecutter.package_name }}.core import beat, completion
from {{ cookiecutter.package_name }}.core.runs import derived_id
from {{ cookiecutter.package_name }}.tasks.newsletter import deliveries_key, sent_key

from .support.containers import Task
from .support.databases import KINDS, fresh_database
from .support.workers import Fleet, wait_for
from .users import seed_users

# Real workers over two databases for a minute: the README's test command runs them, the quick
# `-m "not slow"` pass leaves them out.
pytestmark = pytest.mark.slow

ENV = {"WORKER_CONCURRENCY": "2", "LOCK_TTL": "2", "BATCH_SIZE": "100"}
FAN_OUT = "send_newsletter_fan_out"
BATCHING = "send_newsletter_batching"


@pytest.fixture(params=KINDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def newsletter(redis_client: redis.Redis) -> Iterator[str]:
    name = uuid.uuid4().hex
    yield name
    redis_client.delete(deliveries_key(name), sent_key(name))


def sends(redis_client: redis.Redis, newsletter: str) -> dict[int, int]:
    """User id -> how many times the newsletter was sent to that user."""
    counts = redis_client.hgetall(deliveries_key(newsletter))
    return {int(user): int(count) for user, count in counts.items()}


def completed(redis_client: redis.Redis, task_id: str) -> bool:
    return bool(redis_client.exists(completion.PREFIX + task_id))


def log_count(fleet: Fleet, event: str, **fields: Any) -> int:
    return sum(len(worker.events(event, **fields)) for worker in fleet.workers)


def redeliver(fleet: Fleet, redis_client: redis.Redis, name: str, args: list, task_id: str) -> None:
    """Deliver ``task_id`` again as if its worker died after its work, before its marker."""
    redis_client.delete(completion.PREFIX + task_id)
    fleet.app.send_task(name, args=args, task_id=task_id)


def fanned_out(fleet: Fleet, run: str) -> list[int]:
    """How many children each completed fan-out step of ``run`` published, in order."""
    return [
        int(record["published"])
        for worker in fleet.workers
        for record in worker.events("run.fanned_out", run=run)
    ]


def test_fan_out_sends_once_per_user_and_a_redelivery_adds_no_child(
    fleet: Fleet, redis_client: redis.Redis, database_url: str, newsletter: str
) -> None:
    seed_users(database_url, 1000)
    fleet.start_ready({**ENV, "DATABASE_URL": database_url})
    run = uuid.uuid4().hex
    fleet.app.send_task(FAN_OUT, args=[newsletter], task_id=run)
    wait_for(lambda: len(sends(redis_client, newsletter)) == 1000, 60, "1,000 sends")
    wait_for(lambda: completed(redis_client, run), 30, "the fan-out to complete")

    # Redelivered after it published every child: its progress says so, it publishes none.
    redeliver(fleet, redis_client, FAN_OUT, [newsletter], run)
    wait_for(lambda: len(fanned_out(fleet, run)) == 2, 30, "the redelivered fan-out to end")
    assert fanned_out(fleet, run) == [1000, 0]
    assert sends(redis_client, newsletter) == {user: 1 for user in range(1, 1001)}
    assert log_count(fleet, "task.started", task="send_newsletter_to_user") == 1000


def test_fan_out_redelivered_without_its_progress_publishes_ids_already_done(
    fleet: Fleet, redis_client: redis.Redis, tmp_path: Path, newsletter: str
) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        seed_users(url, 200)
        fleet.start_ready({**ENV, "DATABASE_URL": url})
        run = uuid.uuid4().hex
        fleet.app.send_task(FAN_OUT, args=[newsletter], task_id=run)
        wait_for(lambda: len(sends(redis_client, newsletter)) == 200, 60, "200 sends")
        wait_for(lambda: completed(redis_client, run), 30, "the fan-out to complete")

        # A crash before its first checkpoint loses the progress too: the redelivery publishes
        # the same 200 child ids again, and their completion markers skip every one.
        redis_client.delete(f"progress:{run}")
        redeliver(fleet, redis_client, FAN_OUT, [newsletter], run)
        wait_for(
            lambda: log_count(fleet, "task.skipped", task="send_newsletter_to_user") == 200,
            60,
            "200 skipped children",
        )
    assert fanned_out(fleet, run) == [200, 200]
    assert sends(redis_client, newsletter) == {user: 1 for user in range(1, 201)}


def test_fan_out_step_redelivered_after_its_hand_over_leaves_the_rest_to_the_continuation(
    fleet: Fleet, redis_client: redis.Redis, tmp_path: Path, newsletter: str
) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        seed_users(url, 300)
        fleet.start_ready({**ENV, "DATABASE_URL": url})
        # As if the run's first step had published the children of users 1-200, then neared its
        # time limit and handed over: it is delivered again.
        run = uuid.uuid4().hex
        redis_client.hset(f"progress:{run}", mapping={"head": 200, "cursor": 200})
        fleet.app.send_task(FAN_OUT, args=[newsletter], task_id=run)
        continuation = derived_id(run, f"{FAN_OUT}/after/200")
        wait_for(lambda: completed(redis_client, continuation), 30, "the continuation")
        wait_for(lambda: len(sends(redis_client, newsletter)) == 100, 30, "100 sends")
    assert fanned_out(fleet, run) == [100]
    assert sends(redis_client, newsletter) == {user: 1 for user in range(201, 301)}


def test_batching_sends_once_per_user_when_a_batch_is_redelivered_mid_chain(
    fleet: Fleet, redis_client: redis.Redis, database_url: str, newsletter: str
) -> None:
    seed_users(database_url, 1050)
    fleet.start_ready({**ENV, "DATABASE_URL": database_url})
    run = uuid.uuid4().hex
    fleet.app.send_task(BATCHING, args=[newsletter], task_id=run)
    third = derived_id(run, f"{BATCHING}/after/200")
    wait_for(lambda: completed(redis_client, third), 30, "the third batch to complete")

    # The third batch again, while the chain goes on: it already handed over to the fourth, so
    # it sends nothing and republishes the chain's current step under its id (a duplicate the
    # markers or the run's lock drop).
    redeliver(fleet, redis_client, BATCHING, [newsletter, run, 200], third)
    last = derived_id(run, f"{BATCHING}/after/1050")
    wait_for(lambda: completed(redis_client, last), 60, "the chain to end")
    wait_for(lambda: completed(redis_client, third), 30, "the redelivered batch to complete")
    steps = [run] + [
        derived_id(run, f"{BATCHING}/after/{after}") for after in range(100, 1100, 100)
    ]
    assert all(completed(redis_client, step) for step in [*steps, last])
    assert sends(redis_client, newsletter) == {user: 1 for user in range(1, 1051)}
    assert log_count(fleet, "newsletter.sent") == 1050


def test_locked_single_task_sends_once_per_user(
    fleet: Fleet, redis_client: redis.Redis, tmp_path: Path, newsletter: str
) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        seed_users(url, 20)
        fleet.start_ready({**ENV, "DATABASE_URL": url})
        task_id = uuid.uuid4().hex
        fleet.app.send_task("send_newsletter_locking", args=[newsletter], task_id=task_id)
        wait_for(lambda: completed(redis_client, task_id), 30, "the locked run to complete")
    assert sends(redis_client, newsletter) == {user: 1 for user in range(1, 21)}


def test_the_weekly_tick_sends_its_newsletter_once_even_published_twice(
    fleet: Fleet, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # A random week: no other run of this test against the same Redis shares its newsletter.
    tick = datetime(2026, 11, 23, 8, tzinfo=UTC) + timedelta(weeks=random.randrange(100_000))
    newsletter = f"weekly-{tick:%Y-%m-%d}"
    task_id = beat.tick_id("weekly-newsletter", tick)
    try:
        with fresh_database("sqlite", tmp_path) as url:
            seed_users(url, 20)
            fleet.start_ready({**ENV, "DATABASE_URL": url})
            for _ in range(2):  # the tick published twice, as the beat does at worst
                fleet.app.send_task(
                    "send_weekly_newsletter",
                    task_id=task_id,
                    headers={beat.TICK_HEADER: tick.isoformat()},
                )
            ended = ("task.succeeded", "task.skipped")
            wait_for(
                lambda: sum(log_count(fleet, event, task_id=task_id) for event in ended) == 2,
                30,
                "both deliveries of the tick",
            )
            fan_out = derived_id(task_id, "fan-out")
            wait_for(lambda: completed(redis_client, fan_out), 30, "the week's fan-out")
            wait_for(lambda: len(sends(redis_client, newsletter)) == 20, 30, "every user's send")
        assert sends(redis_client, newsletter) == {user: 1 for user in range(1, 21)}
    finally:
        redis_client.delete(deliveries_key(newsletter), sent_key(newsletter))


@pytest.mark.image
def test_image_worker_stopped_mid_run_finishes_it_first(
    tmp_path: Path, celery_app: Any, redis_client: redis.Redis, newsletter: str
) -> None:
    """The worker of the built image, stopped while sending, finishes the task inside the stop
    window (``support/containers.py``)."""
    users = 5000  # enough that the task is still sending when the stop comes
    with fresh_database("postgresql", tmp_path) as url:
        task = Task(url)
        task.migrate()
        seed_users(url, users)
        with task.worker() as worker:
            celery_app.send_task("send_newsletter_locking", args=[newsletter])
            wait_for(lambda: sends(redis_client, newsletter), 60, "the task to start sending")
            sent_before_stop = len(sends(redis_client, newsletter))
            exit_code, seconds = worker.stop()
            logs = worker.logs()
    assert sent_before_stop < users, "the task ended before the stop: raise the user count"
    assert (exit_code, seconds < task.stop_timeout) == ("0", True), logs[-4000:]
    assert sends(redis_client, newsletter) == dict.fromkeys(range(1, users + 1), 1)
