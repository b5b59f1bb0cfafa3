"""Completion markers: a task that already succeeded is not run again when it is redelivered.

Delivery is at least once: a message can come back after its task succeeded (the worker died
between the end of the task and the acknowledgement, a connection was lost, a retry was
published just before a crash). The base task records ``completed:<task id>`` in Redis when a run
succeeds and checks it before running, so such a redelivery is acknowledged without running
again. The marker is one atomic ``SET`` with a TTL longer than any redelivery window.

What it does not guarantee: a crash after the task's effects but before the marker is written
still runs the task again, so tasks must stay idempotent. Two deliveries running at the same
moment both see no marker; ``locks.no_parallel_processing`` covers that.
"""

from . import config
from .redis_client import client

PREFIX = "completed:"


def is_completed(task_id: str) -> bool:
    return bool(client().exists(PREFIX + task_id))


def mark_completed(task_id: str) -> None:
    client().set(PREFIX + task_id, 1, ex=int(config.current().completion_marker_ttl))
