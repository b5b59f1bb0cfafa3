"""Each consistency rule refuses to start, with a message naming the setting, value and rule."""

import pytest

from {{ cookiecutter.package_name }}.core import broker, config

from ..support.workers import Fleet, wait_for

VALID = {"ECS_STOP_TIMEOUT": "120", "TASK_SOFT_TIME_LIMIT": "75", "TASK_TIME_LIMIT": "90"}

RULES = [
    pytest.param(
        {"TASK_SOFT_TIME_LIMIT": "90"},
        "TASK_SOFT_TIME_LIMIT=90: must be below TASK_TIME_LIMIT=90",
        id="soft-not-below-hard",
    ),
    pytest.param(
        {"TASK_TIME_LIMIT": "110", "TASK_SOFT_TIME_LIMIT": "100"},
        "TASK_TIME_LIMIT=110: must fit the shutdown window of 105 s",
        id="hard-limit-outside-window",
    ),
    pytest.param(
        {"ECS_STOP_TIMEOUT": "300"},
        "ECS_STOP_TIMEOUT=300: must be 2-120 seconds",
        id="stop-timeout-range",
    ),
    pytest.param(
        {"WORKER_SOFT_SHUTDOWN_TIMEOUT": "110"},
        "WORKER_SOFT_SHUTDOWN_TIMEOUT=110: must be 0-105 s",
        id="soft-shutdown-outside-window",
    ),
    pytest.param(
        {"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY=0: must be at least 1", id="concurrency"
    ),
    pytest.param(
        {"REDIS_URL": "http://localhost:6379"},
        "REDIS_URL='http://localhost:6379': must be a redis://, rediss:// or unix:// URL",
        id="redis-url-scheme",
    ),
    pytest.param(
        {"LOCK_TTL": "200"},
        "LOCK_TTL=200: must be 1 s to TASK_TIME_LIMIT=90",
        id="lock-ttl",
    ),
    pytest.param(
        {"COMPLETION_MARKER_TTL": "60"},
        "COMPLETION_MARKER_TTL=60: must be at least 450 s",
        id="completion-marker-ttl",
    ),
    pytest.param(
        {"TASK_DELIVERY_LIMIT": "1"},
        "TASK_DELIVERY_LIMIT=1: must be at least 2",
        id="delivery-limit",
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
    loaded = config.from_env(VALID)
    assert loaded.soft_shutdown_timeout == loaded.shutdown_window
    assert loaded.time_limit <= loaded.soft_shutdown_timeout


@pytest.mark.parametrize(("override", "message"), RULES)
def test_rule_is_checked(override: dict[str, str], message: str) -> None:
    with pytest.raises(config.ConfigError) as raised:
        config.from_env({**VALID, **override})
    assert message in str(raised.value)


def test_every_broken_rule_is_reported_at_once() -> None:
    with pytest.raises(config.ConfigError) as raised:
        config.from_env({"TASK_SOFT_TIME_LIMIT": "95", "WORKER_CONCURRENCY": "0"})
    assert len(raised.value.problems) == 2


def test_worker_refuses_to_start(fleet: Fleet) -> None:
    """The worker runs the same check at import: one rule shows the path, the rest run above."""
    worker = fleet.start({**VALID, "TASK_TIME_LIMIT": "110", "TASK_SOFT_TIME_LIMIT": "100"})
    wait_for(lambda: not worker.alive(), 30, "the misconfigured worker to exit")
    assert worker.process.returncode != 0
    assert "TASK_TIME_LIMIT=110: must fit the shutdown window of 105 s" in worker.output()


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
    ],
)
def test_worker_refuses_unsafe_shutdown(
    fleet: Fleet, override: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    worker = fleet.start(override, args)
    wait_for(lambda: not worker.alive(), 30, "the misconfigured worker to exit")
    assert worker.process.returncode == 78
    assert message in worker.output()
