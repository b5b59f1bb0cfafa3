"""Fixtures shared by the tests: the app bound to queues of this test session, Redis, workers.

Every test session has a broker namespace of its own (``BROKER_NAMESPACE``), so several checkouts
can run their tests against one broker without taking each other's tasks.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

NAMESPACE = f"test-{uuid.uuid4().hex[:12]}"
os.environ["BROKER_NAMESPACE"] = NAMESPACE
# Results let tests wait for a task's outcome; the service itself runs without them.
os.environ.setdefault(
    "CELERY_RESULT_BACKEND", os.environ.get("REDIS_URL", "redis://localhost:6379/0")
)

from {{ cookiecutter.package_name }}.celery_app import app  # noqa: E402
from {{ cookiecutter.package_name }}.core import broker, config  # noqa: E402
from {{ cookiecutter.package_name }}.core.dead_letters import store  # noqa: E402
from {{ cookiecutter.package_name }}.core.redis_client import client  # noqa: E402

from .support import probe_queues  # noqa: E402
from .support.workers import Fleet  # noqa: E402

#: The session's queues on the broker; QUEUE is the default (first) one, which workers consume.
QUEUES = [config.current().broker_queue(queue.name) for queue in config.current().queues]
QUEUE = QUEUES[0]


def remove(client_app: Celery, queues: list[str]) -> None:
    """Delete the session's ``queues`` and their dead letters from the broker."""
    with client_app.connection_for_write() as connection:
        channel = connection.default_channel
        # RabbitMQ deletes a queue that was never declared without complaint, but refuses to
        # purge it; on Redis a queue is just a list.
        for queue in queues:
            if broker.NAME == "rabbitmq":
                channel.queue_delete(queue)
                channel.queue_delete(broker.dead_letter_queue_name(queue))
            else:
                channel.queue_purge(queue)
                client().delete(store.DEAD_LETTERS + queue)


@pytest.fixture(scope="session")
def celery_app() -> Iterator[object]:
    yield app
    remove(app, QUEUES)


@pytest.fixture(scope="session")
def probe_publisher() -> Iterator[Celery]:
    """A client app that knows the tests' probe queues beside queues.py's (``probe_queues``)."""
    publisher = probe_queues.publisher()
    yield publisher
    names = [config.current().broker_queue(queue.name) for queue in probe_queues.PROBE_QUEUES]
    remove(publisher, names)


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
