"""Fixtures shared by the tests: the app bound to a queue of this test session, Redis, workers.

Every test session publishes to a queue of its own (``TASK_DEFAULT_QUEUE``), so several checkouts
can run their tests against one broker without taking each other's tasks.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

QUEUE = f"test-{uuid.uuid4().hex[:12]}"
os.environ["TASK_DEFAULT_QUEUE"] = QUEUE
# Results let tests wait for a task's outcome; the service itself runs without them.
os.environ.setdefault(
    "CELERY_RESULT_BACKEND", os.environ.get("REDIS_URL", "redis://localhost:6379/0")
)

from {{ cookiecutter.package_name }}.celery_app import app  # noqa: E402
from {{ cookiecutter.package_name }}.core import broker, config  # noqa: E402
from {{ cookiecutter.package_name }}.core.dead_letters import store  # noqa: E402
from {{ cookiecutter.package_name }}.core.redis_client import client  # noqa: E402

from .support.workers import Fleet  # noqa: E402


@pytest.fixture(scope="session")
def celery_app() -> Iterator[object]:
    yield app
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        # RabbitMQ deletes a queue that was never declared without complaint, but refuses to
        # purge it; on Redis a queue is just a list.
        if broker.NAME == "rabbitmq":
            channel.queue_delete(QUEUE)
            channel.queue_delete(broker.dead_letter_queue_name(QUEUE))
        else:
            channel.queue_purge(QUEUE)
            client().delete(store.DEAD_LETTERS + QUEUE)


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    client = redis.Redis.from_url(config.current().redis_url, decode_responses=True)
    client.ping()
    return client


@pytest.fixture
def fleet(celery_app: object, tmp_path: Path) -> Iterator[Fleet]:
    workers = Fleet(os.environ, tmp_path, celery_app)
    yield workers
    workers.kill_all()


@pytest.fixture
def item() -> str:
    """A fresh work-item name for the probe tasks."""
    return uuid.uuid4().hex
