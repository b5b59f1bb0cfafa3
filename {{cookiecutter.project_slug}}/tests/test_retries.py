"""A failing task is retried with exponentially growing countdowns, then ends after max_retries."""

import itertools
import uuid

import pytest
import redis
from celery.result import AsyncResult

from .support.runs import runs_of
from .support.workers import Fleet, wait_for

MAX_RETRIES = 4
ITEMS = 8
ENV = {"TASK_MAX_RETRIES": str(MAX_RETRIES), "WORKER_CONCURRENCY": "2"}
#: Publish, delivery and start of the next attempt, on top of the countdown itself.
LATENCY = 1.5


@pytest.mark.slow
def test_failing_task_backs_off_then_fails_after_max_retries(
    fleet: Fleet, redis_client: redis.Redis
) -> None:
    fleet.start_ready(ENV)
    items = [uuid.uuid4().hex for _ in range(ITEMS)]
    results = [fleet.app.send_task("probe.always_fails", args=[item]) for item in items]

    def all_failed() -> bool:
        return all(AsyncResult(result.id, app=fleet.app).state == "FAILURE" for result in results)

    wait_for(all_failed, 90, "every task to fail for good")

    gaps: dict[int, list[float]] = {retry: [] for retry in range(MAX_RETRIES)}
    for item in items:
        runs = runs_of(redis_client, item)
        assert [int(run.fields["retries"]) for run in runs] == list(range(MAX_RETRIES + 1))
        for retry, (failed, next_attempt) in enumerate(itertools.pairwise(runs)):
            gaps[retry].append(next_attempt.start - failed.end)  # type: ignore[operator]

    for retry, observed in gaps.items():
        assert max(observed) <= 2**retry + LATENCY, f"retry {retry} waited longer than its backoff"
    # With full jitter a countdown is uniform in 0..2**retry: before the last retry the bound is
    # 8 s, so one of the tasks waits visibly longer than any first-retry countdown can.
    assert max(gaps[MAX_RETRIES - 1]) > 1 + LATENCY
