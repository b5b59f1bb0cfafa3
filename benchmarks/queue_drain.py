"""Queue drain: no-op tasks per second for each queue setting, beside Celery's defaults.

Bakes the default project of each broker, then drains TASKS no-op tasks with one worker of two
processes for: Celery's defaults (on RabbitMQ on a classic and on a quorum queue, the baseline),
the rendered service's queue as rendered (one message per process), and a queue of short tasks
(hard limit 5 s) with the prefetch its rules allow at the default 120 s stop timeout
(``prefetch_multiplier x time_limit`` within the 105 s window: up to 21), its tasks with and
without completion markers (each marker is a Redis read before the task and a write after it),
and, to tell Celery's cost from the service's, Celery alone with that queue's Celery settings.
Alternating rounds, best of each, all in one run; the last column is the ratio to Celery's
defaults (on a quorum queue on RabbitMQ).

    .venv/bin/python benchmarks/queue_drain.py [--brokers rabbitmq redis]
"""

import json
import sys
from pathlib import Path

from baking import command_line, each_broker, run_queue
from deployment_chaos import BROKER_URLS, REDIS_URL, base_env, cleanup, throughput

ROUNDS = 3
#: Enough that a drain takes seconds, not the moments a worker's start-up blurs.
TASKS = 10_000
#: A short-task queue's limits: its prefetch may go up to 105 / 5 = 21 by the rules.
SHORT = {"TASK_SOFT_TIME_LIMIT": "4", "TASK_TIME_LIMIT": "5"}
#: (label, bench_app variant, the worker's queue settings)
SHORT_QUEUES = [
    (
        f"service short-task queue, prefetch {prefetch}",
        "service",
        {**SHORT, "WORKER_PREFETCH_MULTIPLIER": str(prefetch)},
    )
    for prefetch in (4, 8, 16)
] + [
    (
        "  the same, prefetch 8, no completion markers",
        "service",
        {**SHORT, "WORKER_PREFETCH_MULTIPLIER": "8", "TASK": "bench.noop_unmarked"},
    )
]
#: (label, bench_app variant, the worker's queue settings; TASK: the task drained)
CONFIGURATIONS = {
    "rabbitmq": [
        ("Celery defaults, classic queue", "defaults", {}),
        ("Celery defaults, quorum queue", "defaults-quorum", {}),
        ("  Celery + short-task queue's settings", "short-settings", {}),
        ("service queue as rendered, prefetch 1", "service", {}),
        *SHORT_QUEUES,
    ],
    "redis": [
        ("Celery defaults", "defaults", {}),
        ("  Celery + short-task queue's settings", "short-settings", {}),
        ("service queue as rendered, prefetch 1", "service", {}),
        *SHORT_QUEUES,
    ],
}
BASELINE = {"rabbitmq": "Celery defaults, quorum queue", "redis": "Celery defaults"}


def outer(brokers: list[str]) -> None:
    report(each_broker(__file__, brokers))


def report(results: dict) -> None:
    print(
        f"\nDrain of {TASKS} no-op tasks, 1 worker x 2 processes, best of {ROUNDS} "
        "alternating rounds in one run:\n"
    )
    header = f"{'broker':9} {'queue settings':46} {'tasks/s':>8} {'vs defaults':>12}"
    print(header)
    print("-" * len(header))
    for broker, rates in results.items():
        base = rates[BASELINE[broker]]
        for label, rate in rates.items():
            print(f"{broker:9} {label:46} {rate:>8.0f} {rate / base:>11.2f}x")


# --- inner: runs inside the baked project's environment ------------------------------------------


def inner(broker: str) -> None:
    from importlib import import_module

    import redis
    from celery import Celery

    package = json.loads(Path(".cookiecutter.json").read_text())["package_name"]
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    rates: dict[str, float] = {}
    for _ in range(ROUNDS):
        for label, variant, settings in CONFIGURATIONS[broker]:
            queue = run_queue("bench-drain")
            task = settings.get("TASK", "bench.noop")
            worker = {key: value for key, value in settings.items() if key != "TASK"}
            env = base_env(broker, queue, package, variant, {**worker, "WORKER_CONCURRENCY": "2"})
            producer = Celery("producer", broker=BROKER_URLS[broker])
            producer.conf.task_default_queue = queue
            if variant == "defaults-quorum" or (variant, broker) == ("short-settings", "rabbitmq"):
                producer.conf.task_default_queue_type = "quorum"
            if variant == "service":
                config = import_module(f"{package}.core.config").from_env(env)
                celery_settings = import_module(f"{package}.core.celery_settings")
                producer.conf.update(celery_settings.celery_settings(config))
            rate = throughput(producer, client, env, TASKS, task)
            rates[label] = max(rate, rates.get(label, 0.0))
            cleanup(producer, queue, broker)
            print(f"{broker} {label}: {rate:.0f} tasks/s", file=sys.stderr)
    print(json.dumps(rates))


if __name__ == "__main__":
    command_line(__doc__, inner, outer)
