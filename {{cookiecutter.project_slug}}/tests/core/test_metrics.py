"""Metrics: the worker's metric lines are valid embedded metric format (EMF) documents.

Each line the worker writes with an ``_aws`` member is checked against the EMF specification
(``support/emf.py``, from the specification's own JSON schema): task durations, failures,
retries, dead letters and, on Redis, the queue's depth.
"""

import json
import uuid
from typing import Any

import pytest
import redis

from {{ cookiecutter.package_name }}.core import broker, metrics

from ..conftest import QUEUE
from ..support import emf
from ..support.runs import runs_of
from ..support.workers import Fleet, Worker, wait_for

NAMESPACE = "test-metrics"
ENV = {
    "ECS_STOP_TIMEOUT": "30",
    "TASK_SOFT_TIME_LIMIT": "9",
    "TASK_TIME_LIMIT": "10",
    "WORKER_CONCURRENCY": "1",
    "TASK_RETRY_FIRST_COUNTDOWN": "1",
    "METRICS_NAMESPACE": NAMESPACE,
    "QUEUE_DEPTH_INTERVAL": "1",
}
DEPTH_FROM_WORKER = broker.queue_depth is not None


def metric_lines(worker: Worker) -> list[str]:
    return [line for line in worker.output().splitlines() if '"_aws"' in line]


def documents(worker: Worker, event: str) -> list[dict[str, Any]]:
    return [doc for line in metric_lines(worker) if (doc := json.loads(line))["event"] == event]


def metric_names(document: dict[str, Any]) -> dict[str, list[list[str]]]:
    """Each metric of a document with its dimension sets."""
    return {
        metric["Name"]: directive["Dimensions"]
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }


@pytest.mark.slow
def test_worker_metric_lines_are_valid_emf(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    worker = fleet.start_ready(ENV)
    failing, retried = uuid.uuid4().hex, uuid.uuid4().hex
    fleet.app.send_task("probe.work", args=[item, 0.2])
    fleet.app.send_task("probe.always_fails", args=[failing])
    fleet.app.send_task("probe.fails_transiently", args=[retried])
    wait_for(lambda: documents(worker, "task.retrying"), 30, "a retry")
    redis_client.set(f"probe:fixed:{retried}", 1, ex=600)
    wait_for(
        lambda: any(run.completed for run in runs_of(redis_client, retried)), 30, "the retried task"
    )
    wait_for(lambda: documents(worker, "task.dead_lettered"), 30, "the dead letter")
    if DEPTH_FROM_WORKER:
        wait_for(lambda: documents(worker, "queue.depth"), 30, "a queue depth")

    lines = metric_lines(worker)
    assert {line: problems for line in lines if (problems := emf.problems(line))} == {}
    by_queue, by_task = ["queue"], ["queue", "task"]
    [succeeded] = [d for d in documents(worker, "task.succeeded") if d["task"] == "probe.work"]
    assert metric_names(succeeded) == {"TaskDuration": [by_queue, by_task]}
    assert (succeeded["queue"], 0.2 <= succeeded["TaskDuration"] < 5) == (QUEUE, True)
    [failed] = documents(worker, "task.failed")
    assert metric_names(failed) == {"TaskDuration": [by_queue, by_task], "TaskFailures": [by_queue]}
    assert (failed["task"], failed["TaskFailures"]) == ("probe.always_fails", 1)
    retrying = documents(worker, "task.retrying")[0]
    assert (retrying["task"], retrying["TaskRetries"]) == ("probe.fails_transiently", 1)
    [letter] = documents(worker, "task.dead_lettered")
    assert metric_names(letter) == {"DeadLetters": [by_queue]}
    assert (letter["queue"], letter["DeadLetters"], letter["reason"]) == (QUEUE, 1, "failed")
    namespaces = {
        directive["Namespace"]
        for line in lines
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]
    }
    assert namespaces == {NAMESPACE}
    depths = documents(worker, "queue.depth")
    assert bool(depths) == DEPTH_FROM_WORKER, "only a Redis worker publishes the queue's depth"


@pytest.mark.slow
@pytest.mark.skipif(not DEPTH_FROM_WORKER, reason="Amazon MQ publishes each queue's depth itself")
def test_queue_depth_counts_the_waiting_messages(fleet: Fleet, redis_client: redis.Redis) -> None:
    worker = fleet.start_ready(ENV)
    items = [uuid.uuid4().hex for _ in range(4)]
    for item in items:
        fleet.app.send_task("probe.work", args=[item, 1.5])
    wait_for(
        lambda: all(any(r.completed for r in runs_of(redis_client, item)) for item in items),
        60,
        "every task to complete",
    )
    done = len(documents(worker, "queue.depth"))
    wait_for(lambda: len(documents(worker, "queue.depth")) > done, 10, "a depth after the work")

    depths = [doc["QueueDepth"] for doc in documents(worker, "queue.depth")]
    # One message runs and one is prefetched (unacknowledged, out of the list): 2 wait at first.
    assert max(depths) >= 2, depths
    assert depths[-1] == 0, depths


def test_emf_fields_need_every_dimension() -> None:
    metric = metrics.Metric("TaskDuration", 1.0, "Seconds", metrics.BY_QUEUE_AND_TASK)
    with pytest.raises(ValueError, match="task"):
        metrics.emf(metric, queue="q")
    document = {"event": "x", **metrics.emf(metric, queue="q", task="t")}
    assert emf.problems(json.dumps(document)) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(lambda d: d["_aws"].pop("Timestamp"), "'Timestamp' is a required", id="time"),
        pytest.param(lambda d: d.pop("task"), "dimension 'task'", id="dimension-missing"),
        pytest.param(lambda d: d.update(task=3), "dimension 'task'", id="dimension-not-str"),
        pytest.param(lambda d: d.update(TaskDuration="1"), "no numeric value", id="value"),
        pytest.param(
            lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Unit="Minutes"),
            "does not match",
            id="unit",
        ),
    ],
)
def test_the_emf_check_refuses_invalid_documents(change: Any, problem: str) -> None:
    """The validator can fail: each broken document is refused, naming what is wrong."""
    metric = metrics.Metric("TaskDuration", 1.0, "Seconds", metrics.BY_QUEUE_AND_TASK)
    document = metrics.emf(metric, queue="q", task="t")
    change(document)
    assert any(problem in found for found in emf.problems(json.dumps(document)))
