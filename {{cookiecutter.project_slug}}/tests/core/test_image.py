"""The built image runs as ECS runs its task definition (``support/containers.py``)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from {{ cookiecutter.package_name }}.core import config

from ..support.containers import Task
from ..support.databases import fresh_database
from ..support.workers import PROJECT

pytestmark = pytest.mark.image


@pytest.fixture
def task(tmp_path: Path) -> Iterator[Task]:
    with fresh_database("postgresql", tmp_path) as url:
        yield Task(url)


def migrated_revision(database_url: str) -> str | None:
    engine = create_engine(config.database_url(database_url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def test_migrations_run_from_the_image_as_a_one_off_task(task: Task) -> None:
    head = ScriptDirectory.from_config(Config(str(PROJECT / "alembic.ini"))).get_current_head()
    assert migrated_revision(task.database_url) is None
    task.migrate()
    assert migrated_revision(task.database_url) == head


def test_health_check_fails_in_a_container_without_a_worker(task: Task) -> None:
    result = task.run_once(*task.health_command)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no celery worker process under pid 1" in result.stdout


def test_worker_runs_as_its_user_on_a_read_only_root_and_stops_cleanly(task: Task) -> None:
    task.migrate()
    with task.worker() as worker:  # healthy once it has reached its broker
        # Only /tmp is writable: the worker's ready marker, which the health check found, is there.
        probe = "import os; print(os.getuid(), os.getgid()); open('/app/probe', 'w')"
        result = worker.exec("python", "-c", probe)
        assert result.stdout.split() == task.container["user"].split(":"), result.stdout
        assert "Read-only file system" in result.stderr, result.stderr

        exit_code, seconds = worker.stop()
        assert (exit_code, seconds < task.stop_timeout) == ("0", True), worker.logs()[-4000:]
