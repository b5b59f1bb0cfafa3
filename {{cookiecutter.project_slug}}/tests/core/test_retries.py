"""Transient errors retry on a floored, doubling countdown; permanent ones are dead-lettered."""

import itertools
import uuid

import pytest
import redis

from {{ cookiecutter.package_name }}.core import config, retries
from {{ cookiecutter.package_name }}.core.dead_letters import store

from ..conftest import QUEUE
from ..support.runs import runs_of
from ..support.workers import Fleet, wait_for

MAX_RETRIES = 4
FIRST = 1.0
LONGEST = 4
ITEMS = 6
ENV = {
    "TASK_MAX_RETRIES": str(MAX_RETRIES),
    "TASK_RETRY_FIRST_COUNTDOWN": str(FIRST),
    "TASK_RETRY_BACKOFF_MAX": str(LONGEST),
    "WORKER_CONCURRENCY": "2",
}
#: Publish, delivery and start of the next attempt, on top of the countdown itself.
LATENCY = 1.5


def dead_letters_by_id(fleet: Fleet) -> dict[str, tuple[str, str]]:
    return {letter.id: (letter.reason, letter.error) for letter in store.records(fleet.app, QUEUE)}


def test_default_retries_ride_out_a_five_minute_failover() -> None:
    settings = config.current()
    span = retries.shortest_span(
        settings.max_retries, settings.retry_first_countdown, settings.retry_backoff_max
    )
    assert span >= 300, f"the default retries may all be spent within {span:g} s"
    floors = [retries.countdown(0, FIRST, LONGEST) for _ in range(1000)]
    assert min(floors) >= FIRST / 2
    assert max(floors) <= FIRST


@pytest.mark.slow
def test_transient_error_backs_off_with_a_floor_then_is_dead_lettered(
    fleet: Fleet, redis_client: redis.Redis
) -> None:
    fleet.start_ready(ENV)
    items = {uuid.uuid4().hex: uuid.uuid4().hex for _ in range(ITEMS)}
    for item, task_id in items.items():
        fleet.app.send_task("probe.fails_transiently", args=[item], task_id=task_id)

    wait_for(
        lambda: set(items.values()) <= set(dead_letters_by_id(fleet)),
        60,
        "every task to run out of retries and be dead-lettered",
    )
    letters = dead_letters_by_id(fleet)
    for item, task_id in items.items():
        reason, error = letters[task_id]
        assert reason == "retries_exhausted"
        assert error == f"ConnectionError: attempt {MAX_RETRIES} of {item} cannot connect"
        runs = runs_of(redis_client, item)
        assert [int(run.fields["retries"]) for run in runs] == list(range(MAX_RETRIES + 1))
        for retry, (failed, next_attempt) in enumerate(itertools.pairwise(runs)):
            nominal = min(LONGEST, FIRST * 2**retry)
            gap = next_attempt.start - failed.end  # type: ignore[operator]
            assert nominal / 2 <= gap <= nominal + LATENCY, f"retry {retry} waited {gap:.2f} s"


def test_permanent_error_is_dead_lettered_at_the_first_delivery(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    fleet.start_ready(ENV)
    task_id = uuid.uuid4().hex
    fleet.app.send_task("probe.always_fails", args=[item], task_id=task_id)
    wait_for(lambda: task_id in dead_letters_by_id(fleet), 30, "the failed task's dead letter")
    assert dead_letters_by_id(fleet)[task_id] == (
        "failed",
        f"RuntimeError: attempt 0 of {item} fails on purpose",
    )
    assert len(runs_of(redis_client, item)) == 1
