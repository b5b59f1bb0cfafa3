"""Starting a worker: one refusal path, no password in it, waits for late dependencies, health.

Real worker processes (the task definition's command) and real servers: private Redis and
PostgreSQL instances for the ones that are late or gone, ports where nothing listens for the ones
that never answer.
"""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.core import broker, config, refusal, worker_checks

from ..support.private_services import (
    Cut,
    dead_port,
    private_postgres,
    private_redis,
    reserved_port,
)
from ..support.workers import PROJECT, Fleet, Worker, wait_for

PASSWORD = "Hunter2-s3cret"  # noqa: S105 (a fake one, searched for in every message)
PACKAGE = config.__name__.partition(".")[0]
HEALTHCHECK = PROJECT / "deploy" / "ecs" / "healthcheck.py"
SCHEME = broker.SCHEMES[0]
#: Short enough for a test, long enough for a server started a few seconds late.
SHORT_WAIT = "3"
LATE_WAIT = "60"


def refused(worker: Worker, timeout: float = 60) -> str:
    """The output of a worker that must exit 78 without a traceback or a password."""
    wait_for(lambda: not worker.alive(), timeout, "the worker to be refused")
    output = worker.output()
    assert worker.process.returncode == refusal.EXIT_STATUS, output
    assert "Traceback" not in output
    assert PASSWORD not in output
    return output


def waited_for(worker: Worker, setting: str) -> None:
    """Wait until the worker logs that it waits for ``setting``."""
    wait_for(
        lambda: worker.events("worker.waiting", setting=setting),
        30,
        f"the worker to wait for {setting}",
    )


# One refusal path: everything found at import, listed at once.

#: Problems of the settings every process reads; a worker's queue settings are checked once it
#: has chosen its queue (test_config.py).
IMPORT_PROBLEMS = {
    "TASK_MAX_RETRIES": ("many", "TASK_MAX_RETRIES='many': must be a whole number"),
    "BROKER_NAMESPACE": ("a b", "BROKER_NAMESPACE='a b': must be 1-64 letters"),
    "REDIS_URL": (
        f"http://app:{PASSWORD}@cache:6379/0",
        "REDIS_URL='http://app:***@cache:6379/0': must be a redis://",
    ),
    "DATABASE_URL": (
        f"mysql://app:{PASSWORD}@db/app",
        "DATABASE_URL='mysql://app:***@db/app': must be a sqlite://",
    ),
    "CELERY_BROKER_URL": (
        f"{SCHEME}://app:{PASSWORD}@a;ftp://app:{PASSWORD}@b",
        f"CELERY_BROKER_URL='{SCHEME}://app:***@a;ftp://app:***@b': must be ",
    ),
    "STARTUP_DEPENDENCY_TIMEOUT": ("600", "STARTUP_DEPENDENCY_TIMEOUT=600: must be 0-270 s"),
}
IMPORT_ENV = {name: value for name, (value, _) in IMPORT_PROBLEMS.items()}


def test_worker_refuses_every_import_problem_at_once(fleet: Fleet) -> None:
    output = refused(fleet.start(IMPORT_ENV))
    assert f"the configuration has {len(IMPORT_PROBLEMS)} problems:" in output
    for _, message in IMPORT_PROBLEMS.values():
        assert message in output


def test_dead_letter_command_refuses_in_the_same_form(fleet: Fleet) -> None:
    worker_output = refused(fleet.start(IMPORT_ENV))
    command = subprocess.run(
        [sys.executable, "-m", f"{PACKAGE}.core.dead_letters", "list"],
        env={**os.environ, **IMPORT_ENV},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert command.returncode == refusal.EXIT_STATUS
    assert command.stdout == ""
    assert command.stderr.strip() == worker_output.strip()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("garbage", "'garbage' has no scheme", id="no-scheme"),
        pytest.param(
            f"{SCHEME}://app:{PASSWORD}@a;ftp://app:{PASSWORD}@b",
            "'ftp://app:***@b' has the scheme ftp",
            id="failover-part",
        ),
        pytest.param(
            f"{SCHEME}://app:{PASSWORD}@a:port/0",
            f"'{SCHEME}://app:***@a:port/0' does not parse",
            id="does-not-parse",
        ),
    ],
)
def test_broker_url_must_be_this_brokers(url: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as raised:
        config.from_env({"CELERY_BROKER_URL": url})
    assert message in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_broker_failover_list_of_this_broker_passes() -> None:
    url = f"{SCHEME}://app:{PASSWORD}@a;{broker.SCHEMES[1]}://app:{PASSWORD}@b"
    assert config.from_env({"CELERY_BROKER_URL": url}).broker_url == url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"amqp://app:{PASSWORD}@a;amqps://app:{PASSWORD}@b//", "amqp://app:***@a;amqps://app:***@b//"),
        (f"rediss://:{PASSWORD}@cache:6380/0", "rediss://:***@cache:6380/0"),
        (f"sentinel://:{PASSWORD}@s1;sentinel://:{PASSWORD}@s2", "sentinel://:***@s1;sentinel://:***@s2"),
        (f"redis://cache/0?password={PASSWORD}", "redis://cache/0?password=***"),
        (f"postgresql+psycopg://app:{PASSWORD}@db/app", "postgresql+psycopg://app:***@db/app"),
        (f"app:{PASSWORD}@cache", "app:***@cache"),
        (f"redis://app:{PASSWORD}@cache:port/0", "redis://app:***@cache:port/0"),
        (f"redis://app:{PASSWORD[:4]};{PASSWORD[4:]}@cache/0", "redis://app:***@cache/0"),
        (f"redis://app:{PASSWORD[:4]}@{PASSWORD[4:]}@cache/0", "redis://app:***@cache/0"),
        ("sqlite:////tmp/a@b.sqlite3", "sqlite:////tmp/a@b.sqlite3"),
    ],
)  # fmt: skip
def test_shown_url_hides_every_password(url: str, shown: str) -> None:
    assert refusal.shown_url(url) == shown


# Refused at worker start: every problem at once, the dependencies tried once.


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that never answers while the test runs."""
    with dead_port() as port:
        yield port


def test_worker_start_refusal_lists_every_problem(fleet: Fleet, silent_port: int) -> None:
    stray = f"{SCHEME}://app:{PASSWORD}@127.0.0.1:{silent_port}/0"
    redis_url = f"redis://:{PASSWORD}@127.0.0.1:{silent_port}/0"
    started = time.monotonic()
    worker = fleet.start({"REMAP_SIGTERM": "SIGQUIT", "BROKER_URL": stray, "REDIS_URL": redis_url})
    output = refused(worker)
    assert "the configuration has 3 problems:" in output
    assert "REMAP_SIGTERM='SIGQUIT': must be unset" in output
    assert (
        f"BROKER_URL='{SCHEME}://app:***@127.0.0.1:{silent_port}/0': must be unset (or "
        "equal CELERY_BROKER_URL=" in output
    )
    assert (
        f"REDIS_URL='redis://:***@127.0.0.1:{silent_port}/0': cannot reach Redis (tried "
        "once: the worker is refused anyway)" in output
    )
    # Refused at once, not after STARTUP_DEPENDENCY_TIMEOUT (120 s).
    assert time.monotonic() - started < 60


def test_broker_url_equal_to_the_setting_is_accepted() -> None:
    initial = {"CELERY_BROKER_URL": "amqp://a//"}
    assert worker_checks.override_problems({"BROKER_URL": "amqp://a//"}, initial) == []
    assert worker_checks.override_problems({"RESULT_BACKEND": "redis://b/0"}, initial) != []


# Startup waits: a late dependency is waited for, a missing one refused after the bound.


def test_worker_waits_for_a_late_redis(fleet: Fleet, tmp_path: Path) -> None:
    with private_redis(appendonly=False, start=False) as server:
        env = {"REDIS_URL": server.url, "STARTUP_DEPENDENCY_TIMEOUT": LATE_WAIT}
        worker = fleet.start(env)
        waited_for(worker, "REDIS_URL")
        server.start()
        fleet.wait_ready(worker, timeout=60)
        assert fleet.app.send_task("probe.echo", args=[5]).get(timeout=30) == 5


def test_worker_refuses_a_redis_that_never_answers(fleet: Fleet, silent_port: int) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{silent_port}/0"
    started = time.monotonic()
    worker = fleet.start({"REDIS_URL": url, "STARTUP_DEPENDENCY_TIMEOUT": SHORT_WAIT})
    output = refused(worker)
    assert time.monotonic() - started >= float(SHORT_WAIT)
    assert (
        f"REDIS_URL='redis://:***@127.0.0.1:{silent_port}/0': cannot reach Redis within "
        f"STARTUP_DEPENDENCY_TIMEOUT={SHORT_WAIT} s: " in output
    )
    assert worker.events("worker.waiting", setting="REDIS_URL")


def test_worker_waits_for_a_late_database(fleet: Fleet) -> None:
    with private_postgres() as server:
        env = {"DATABASE_URL": server.url, "STARTUP_DEPENDENCY_TIMEOUT": LATE_WAIT}
        worker = fleet.start(env)
        waited_for(worker, "DATABASE_URL")
        server.start()
        fleet.wait_ready(worker, timeout=60)
        assert fleet.app.send_task("probe.echo", args=[5]).get(timeout=30) == 5


def test_worker_refuses_a_database_that_never_answers(fleet: Fleet, silent_port: int) -> None:
    url = f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:{silent_port}/app"
    started = time.monotonic()
    output = refused(fleet.start({"DATABASE_URL": url, "STARTUP_DEPENDENCY_TIMEOUT": SHORT_WAIT}))
    assert time.monotonic() - started >= float(SHORT_WAIT)
    assert (
        f"DATABASE_URL='postgresql+psycopg://app:***@127.0.0.1:{silent_port}/app': "
        f"cannot reach the database within STARTUP_DEPENDENCY_TIMEOUT={SHORT_WAIT} s: " in output
    )


# The health check: unhealthy until the broker was reached once, healthy through a later outage.


def health(worker: Worker, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), str(worker.pid)],
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_worker_that_never_reached_its_broker_is_unhealthy(
    fleet: Fleet, tmp_path: Path, silent_port: int
) -> None:
    url = f"{SCHEME}://127.0.0.1:{silent_port}/0"
    worker = fleet.start({"CELERY_BROKER_URL": url, "TMPDIR": str(tmp_path)})
    # The pool runs (Celery starts it before the consumer), and the consumer keeps retrying.
    wait_for(
        lambda: "has not reached its broker yet" in health(worker, tmp_path).stdout,
        60,
        "the health check to see the pool of the worker without a broker",
    )
    wait_for(lambda: "Cannot connect to" in worker.output(), 60, "a failed broker connection")
    result = health(worker, tmp_path)
    assert worker.alive()
    assert result.returncode == 1, result.stdout
    assert f"celery worker {worker.pid} has not reached its broker yet" in result.stdout


def test_worker_that_lost_its_broker_stays_healthy(fleet: Fleet, tmp_path: Path) -> None:
    if broker.NAME == "redis":
        with private_redis(appendonly=False) as server:
            check_broker_loss(fleet, tmp_path, server.url, server.kill)
    else:
        # Reserved until the end, so nothing else listens there once the relay is cut.
        with reserved_port() as port:
            relay = Cut(port, 5672)
            try:
                url = f"amqp://guest:guest@127.0.0.1:{port}//"
                check_broker_loss(fleet, tmp_path, url, relay.cut)
            finally:
                relay.cut()


def check_broker_loss(fleet: Fleet, tmp: Path, url: str, lose: Callable[[], None]) -> None:
    worker = fleet.start({"CELERY_BROKER_URL": url, "TMPDIR": str(tmp)})
    wait_for(lambda: health(worker, tmp).returncode == 0, 60, "the worker to be healthy")
    lose()
    wait_for(lambda: "Cannot connect to" in worker.output(), 60, "the worker to miss its broker")
    result = health(worker, tmp)
    assert result.returncode == 0, result.stdout
    assert worker.alive()
