"""Each consistency rule refuses to start, with a message naming the setting, value and rule.

A worker's environment may override its own queue's settings (``config.QUEUE_ENVIRONMENT``); the
rules of every queue of queues.py are checked in every process.
"""

import dataclasses

import pytest

from {{ cookiecutter.package_name }}.core import broker, config
from {{ cookiecutter.package_name }}.core.queues import Queue

from ..support.workers import Fleet, wait_for

VALID = {"ECS_STOP_TIMEOUT": "120", "TASK_SOFT_TIME_LIMIT": "75", "TASK_TIME_LIMIT": "90"}
#: The default queue: the worker the environments below configure.
QUEUE = config.current().queues[0].name
SHORT = Queue(
    "short",
    concurrency=2,
    prefetch_multiplier=8,
    soft_time_limit=5,
    time_limit=10,
    stop_timeout=120,
    cpu=512,
    memory=1024,
)

RULES = [
    pytest.param(
        {"TASK_SOFT_TIME_LIMIT": "90"},
        f"TASK_SOFT_TIME_LIMIT=90 (queue {QUEUE}): must be below "
        f"TASK_TIME_LIMIT=90 (queue {QUEUE})",
        id="soft-not-below-hard",
    ),
    pytest.param(
        {"TASK_TIME_LIMIT": "110", "TASK_SOFT_TIME_LIMIT": "100"},
        f"TASK_TIME_LIMIT=110 (queue {QUEUE}): must fit the shutdown window of 105 s",
        id="hard-limit-outside-window",
    ),
    pytest.param(
        {"ECS_STOP_TIMEOUT": "300"},
        f"ECS_STOP_TIMEOUT=300 (queue {QUEUE}): must be 2-120 seconds",
        id="stop-timeout-range",
    ),
    pytest.param(
        {"WORKER_SOFT_SHUTDOWN_TIMEOUT": "110"},
        "WORKER_SOFT_SHUTDOWN_TIMEOUT=110: must be 0-105 s",
        id="soft-shutdown-outside-window",
    ),
    pytest.param(
        {"WORKER_CONCURRENCY": "0"},
        f"WORKER_CONCURRENCY=0 (queue {QUEUE}): must be at least 1",
        id="concurrency",
    ),
    pytest.param(
        {"REDIS_URL": "http://localhost:6379"},
        "REDIS_URL='http://localhost:6379': must be a redis://, rediss:// or unix:// URL",
        id="redis-url-scheme",
    ),
    pytest.param(
        {"LOCK_TTL": "200"},
        "LOCK_TTL=200: must be 1 s to the hard time limit (90 s",
        id="lock-ttl",
    ),
    pytest.param(
        {"COMPLETION_MARKER_TTL": "60"},
        "COMPLETION_MARKER_TTL=60: must be at least 450 s",
        id="completion-marker-ttl",
    ),
    pytest.param(
        {"WORKER_PREFETCH_MULTIPLIER": "2"},
        f"WORKER_PREFETCH_MULTIPLIER=2 (queue {QUEUE}): times TASK_TIME_LIMIT=90 (queue {QUEUE}) "
        "must fit the shutdown window of 105 s",
        id="prefetch-of-long-tasks",
    ),
    pytest.param(
        {"BROKER_NAMESPACE": "celery queues"},
        "BROKER_NAMESPACE='celery queues': must be 1-64 letters",
        id="namespace",
    ),
    pytest.param(
        {"TASK_TIME_LIMIT": "ninety"},
        "TASK_TIME_LIMIT='ninety': must be a number",
        id="not-a-number",
    ),
    pytest.param(
        {"TASK_TIME_LIMIT": "nan"},
        "TASK_TIME_LIMIT='nan': must be a finite number",
        id="not-finite",
    ),
    pytest.param(
        {"WORKER_CONCURRENCY": "2.5"},
        "WORKER_CONCURRENCY='2.5': must be a whole number",
        id="not-whole",
    ),
    pytest.param(
        {"SCALE_IN_PROTECTION_MINUTES": "2"},
        "SCALE_IN_PROTECTION_MINUTES=2: must be 1-2880 (what ECS accepts) and cover "
        f"the hard time limit (90 s, queue {QUEUE}) + SCALE_IN_PROTECTION_REFRESH=60 s",
        id="protection-shorter-than-hard-limit",
    ),
    pytest.param(
        {"SCALE_IN_PROTECTION_MINUTES": "3000"},
        "SCALE_IN_PROTECTION_MINUTES=3000: must be 1-2880",
        id="protection-beyond-ecs",
    ),
    pytest.param(
        {"LONG_TASKS": "true", "TASK_TIME_LIMIT": "3600", "SCALE_IN_PROTECTION_MINUTES": "30"},
        "SCALE_IN_PROTECTION_MINUTES=30: must be 1-2880 (what ECS accepts) and cover "
        f"the hard time limit (3600 s, queue {QUEUE})",
        id="long-task-outlasts-protection",
    ),
    pytest.param(
        {"SCALE_IN_PROTECTION_REFRESH": "0.5"},
        "SCALE_IN_PROTECTION_REFRESH=0.5: must be at least 1 s",
        id="protection-refresh",
    ),
    pytest.param(
        {"LONG_TASKS": "maybe"}, "LONG_TASKS='maybe': must be true or false", id="long-tasks"
    ),
    pytest.param(
        {"METRICS_NAMESPACE": ":aws"},
        "METRICS_NAMESPACE=':aws': must be 1-255 characters, not starting with ':'",
        id="metrics-namespace",
    ),
    pytest.param(
        {"QUEUE_DEPTH_INTERVAL": "0"},
        "QUEUE_DEPTH_INTERVAL=0: must be at least 1 s",
        id="queue-depth-interval",
    ),
]
if broker.NAME == "redis":
    RULES.append(
        pytest.param(
            {"BROKER_VISIBILITY_TIMEOUT": "300"},
            "BROKER_VISIBILITY_TIMEOUT=300: must be at least 450 s",
            id="visibility-timeout-too-short",
        )
    )
else:
    RULES.append(
        pytest.param(
            {"BROKER_HEARTBEAT": "60"},
            "BROKER_HEARTBEAT=60: must be 0 (off) or above WORKER_SOFT_SHUTDOWN_TIMEOUT=105",
            id="heartbeat-shorter-than-soft-shutdown",
        )
    )


def test_answers_give_a_valid_configuration() -> None:
    loaded = config.from_env(VALID, QUEUE)
    assert loaded.soft_shutdown_timeout == loaded.shutdown_window
    assert loaded.time_limit <= loaded.soft_shutdown_timeout


def test_long_tasks_may_outlast_the_stop_window_under_protection() -> None:
    """With long tasks the hard limit leaves the window; the expiry then follows it."""
    loaded = config.from_env({**VALID, "LONG_TASKS": "true", "TASK_TIME_LIMIT": "3600"}, QUEUE)
    assert loaded.time_limit > loaded.shutdown_window
    assert loaded.protection_minutes == 61 + config.PROTECTION_SLACK_MINUTES


@pytest.mark.parametrize(("override", "message"), RULES)
def test_rule_is_checked(override: dict[str, str], message: str) -> None:
    with pytest.raises(config.ConfigError) as raised:
        config.from_env({**VALID, **override}, QUEUE)
    assert message in str(raised.value)


def test_every_broken_rule_is_reported_at_once() -> None:
    with pytest.raises(config.ConfigError) as raised:
        config.from_env({"TASK_SOFT_TIME_LIMIT": "95", "WORKER_CONCURRENCY": "0"}, QUEUE)
    assert len(raised.value.problems) == 2


def test_only_a_worker_takes_its_queue_settings_from_the_environment() -> None:
    """Elsewhere (a publisher, the beat) no queue is the process's own: queues.py's stand."""
    defined = config.current().queues[0]
    loaded = config.from_env({"TASK_TIME_LIMIT": "110", "WORKER_CONCURRENCY": "0"})
    assert (loaded.time_limit, loaded.concurrency) == (defined.time_limit, defined.concurrency)
    shorter = defined.time_limit - 0.5
    worker = config.from_env({"TASK_TIME_LIMIT": f"{shorter:g}"}, QUEUE)
    assert worker.time_limit == shorter
    assert worker.own_queue == dataclasses.replace(defined, time_limit=shorter)


@pytest.mark.parametrize(
    ("queues", "message"),
    [
        pytest.param((), "QUEUES=(): must define at least one queue", id="none"),
        pytest.param(
            (SHORT, dataclasses.replace(SHORT, name="Slow Queue")),
            "queues.py name='Slow Queue': must be 1-32 lowercase letters",
            id="name",
        ),
        pytest.param((SHORT, SHORT), "name='short': must be unique", id="twice"),
        pytest.param((dataclasses.replace(SHORT, name="beat"),), "taken by the beat", id="beat"),
        pytest.param(
            (dataclasses.replace(SHORT, concurrency=1.5),),
            "queues.py short.concurrency=1.5: must be a whole number",
            id="not-whole",
        ),
        pytest.param(
            (dataclasses.replace(SHORT, time_limit=15),),
            "queues.py short.prefetch_multiplier=8: times queues.py short.time_limit=15 must fit "
            "the shutdown window of 105 s",
            id="prefetch-of-long-tasks",
        ),
        pytest.param(
            (SHORT, dataclasses.replace(SHORT, name="slow", soft_time_limit=100, time_limit=110)),
            "queues.py slow.time_limit=110: must fit the shutdown window of 105 s "
            "(queues.py slow.stop_timeout=120 minus 15 s",
            id="other-queue-outside-its-window",
        ),
        pytest.param(
            (dataclasses.replace(SHORT, long_tasks=True, time_limit=600),),
            "queues.py short.prefetch_multiplier=8: must be 1 on a queue of long tasks",
            id="long-tasks-reserve-nothing",
        ),
        pytest.param(
            (dataclasses.replace(SHORT, long_tasks="yes"),),
            "queues.py short.long_tasks='yes': must be True or False",
            id="long-tasks-not-a-bool",
        ),
        pytest.param(
            (dataclasses.replace(SHORT, stop_timeout=30, delivery_limit=1),),
            "queues.py short.delivery_limit=1: must be at least 2",
            id="delivery-limit",
        ),
        pytest.param(
            (dataclasses.replace(SHORT, cpu=256, memory=4096),),
            "queues.py short.memory=4096: with cpu 256 Fargate allows 512-2048 MiB",
            id="fargate-size",
        ),
        pytest.param(
            (dataclasses.replace(SHORT, min_workers=-1),),
            "queues.py short.min_workers=-1: must be 0 or more",
            id="min-workers",
        ),
        pytest.param(
            (dataclasses.replace(SHORT, min_workers=3, max_workers=2),),
            "queues.py short.max_workers=2: must be at least 1 and at least "
            "queues.py short.min_workers=3",
            id="max-below-min",
        ),
        pytest.param(
            (dataclasses.replace(SHORT, min_workers=0, max_workers=0),),
            "queues.py short.max_workers=0: must be at least 1",
            id="no-worker-ever",
        ),
        pytest.param(
            (dataclasses.replace(SHORT, backlog_per_worker=0),),
            "queues.py short.backlog_per_worker=0: must be above 0",
            id="backlog-target",
        ),
        pytest.param(
            (dataclasses.replace(SHORT, backlog_per_worker="4"),),
            "queues.py short.backlog_per_worker='4': must be a number",
            id="backlog-not-a-number",
        ),
        pytest.param(
            (dataclasses.replace(SHORT, scale_in_cooldown=60),),
            "queues.py short.scale_in_cooldown=60: must be at least "
            "queues.py short.stop_timeout=120 s",
            id="scale-in-before-the-stops-end",
        ),
        pytest.param(
            (dataclasses.replace(SHORT, scale_out_cooldown=-1),),
            "queues.py short.scale_out_cooldown=-1: must be 0 or more",
            id="scale-out-cooldown",
        ),
    ],
)
def test_queue_definition_rule_is_checked(queues: tuple[Queue, ...], message: str) -> None:
    with pytest.raises(config.ConfigError) as raised:
        config.from_env({}, queues=queues)
    assert message in str(raised.value)


def test_a_short_task_queue_may_reserve_what_it_can_finish_in_the_window() -> None:
    loaded = config.from_env({}, queues=(SHORT,))
    assert loaded.prefetch_multiplier * loaded.time_limit <= loaded.shutdown_window


def test_a_queue_of_long_tasks_may_outlast_its_window() -> None:
    long = dataclasses.replace(SHORT, long_tasks=True, prefetch_multiplier=1, time_limit=3600)
    loaded = config.from_env({}, queues=(SHORT, dataclasses.replace(long, name="long")))
    assert loaded.queues[1].time_limit > loaded.shutdown_window


def test_worker_refuses_to_start(fleet: Fleet) -> None:
    """The worker runs the same check for its queue: one rule shows the path, the rest above."""
    worker = fleet.start({**VALID, "TASK_TIME_LIMIT": "110", "TASK_SOFT_TIME_LIMIT": "100"})
    wait_for(lambda: not worker.alive(), 30, "the misconfigured worker to exit")
    assert worker.process.returncode == 78
    assert f"TASK_TIME_LIMIT=110 (queue {QUEUE}): must fit the shutdown window" in worker.output()
    assert "Traceback" not in worker.output()


@pytest.mark.parametrize(
    ("override", "args", "message"),
    [
        pytest.param(
            {"REMAP_SIGTERM": "SIGQUIT"},
            (),
            "REMAP_SIGTERM='SIGQUIT': must be unset",
            id="sigterm-remapped",
        ),
        pytest.param(
            {},
            ("--pool=threads",),
            "worker pool=celery.concurrency.thread: must be prefork",
            id="pool-not-prefork",
        ),
        pytest.param(
            {},
            ("--queues=nope",),
            "--queues=nope: must name one queue that queues.py defines",
            id="unknown-queue",
        ),
        pytest.param(
            {},
            (f"--queues={QUEUE},{QUEUE}-2",),
            f"--queues={QUEUE},{QUEUE}-2: must name one queue",
            id="two-queues",
        ),
    ],
)
def test_worker_refuses_unsafe_shutdown(
    fleet: Fleet, override: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    worker = fleet.start(override, args)
    wait_for(lambda: not worker.alive(), 30, "the misconfigured worker to exit")
    assert worker.process.returncode == 78
    assert message in worker.output()
