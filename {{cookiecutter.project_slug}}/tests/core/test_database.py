"""DATABASE_URL: a URL the service cannot use, or a database it cannot reach, stops it at start."""

import pytest

from {{ cookiecutter.package_name }}.core import config

from ..support.workers import Fleet, wait_for


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param(
            "mysql://app:secret@db.internal/app",
            "DATABASE_URL='mysql://app:***@db.internal/app': must be a sqlite:// or "
            "postgresql:// (postgresql+psycopg://) URL",
            id="driver-not-installed",
        ),
        pytest.param("users.sqlite3", "DATABASE_URL='users.sqlite3': must be", id="not-a-url"),
    ],
)
def test_unusable_database_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as raised:
        config.from_env({"DATABASE_URL": url})
    assert message in str(raised.value)
    assert "secret" not in str(raised.value)


def test_postgresql_url_gets_the_installed_driver() -> None:
    url = config.database_url("postgresql://app@db.internal/app")
    assert url.drivername == "postgresql+psycopg"


def test_batch_size_rule() -> None:
    with pytest.raises(config.ConfigError) as raised:
        config.from_env({"BATCH_SIZE": "0"})
    assert "BATCH_SIZE=0: must be at least 1" in str(raised.value)


def test_worker_refuses_to_start_without_its_database(fleet: Fleet) -> None:
    url = "postgresql+psycopg://postgres:secret@127.0.0.1:1/test"
    # Waited for (briefly here) before the refusal: tests/core/test_startup.py shows the wait.
    worker = fleet.start({"DATABASE_URL": url, "STARTUP_DEPENDENCY_TIMEOUT": "1"})
    wait_for(lambda: not worker.alive(), 30, "the worker to exit")
    assert worker.process.returncode == 78
    output = worker.output()
    assert (
        "DATABASE_URL='postgresql+psycopg://postgres:***@127.0.0.1:1/test': "
        "cannot reach the database" in output
    )
    assert "secret" not in output
