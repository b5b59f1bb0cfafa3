"""Dead letters: messages set aside, with the reason, instead of being lost or delivered forever.

A message leaves the broker only when its task succeeded or once it is in the dead-letter store
(``store.py``, one per broker). It gets there when its task fails with a permanent error or runs
out of retries, rejects it, reaches its time limit, or is delivered its queue's ``delivery_limit``
times without finishing; and when the message itself cannot run (undecodable, an unknown task, no
Celery headers). ``dead_letters.worker`` decides; ``python -m {{ cookiecutter.package_name }}.core.dead_letters``
lists, requeues and purges. See docs/dead_letters.md.
"""

import datetime
import hashlib
from dataclasses import asdict, dataclass
from typing import Any


class DeadLetterError(Exception):
    """A dead-letter command could not be carried out; the message says why."""


class UnknownDeadLetters(DeadLetterError):
    """Some task ids are not in the dead-letter store; nothing was changed."""

    def __init__(self, queues: str, ids: list[str]) -> None:
        self.ids = ids
        listed = ", ".join(repr(task_id) for task_id in ids)
        super().__init__(f"no dead letter with id {listed} in {queues}; nothing requeued")


class StoreUnreachable(DeadLetterError):
    """The broker (or Redis) holding the dead letters does not answer."""


class DeliveryLimitExceeded(Exception):
    """This message was delivered more often than its queue's delivery_limit without its task
    finishing."""

    def __init__(self, deliveries: int, limit: int) -> None:
        super().__init__(deliveries, limit)
        self.deliveries = deliveries
        self.limit = limit

    def __str__(self) -> str:
        return (
            f"{self.deliveries} deliveries ended without the task finishing "
            f"(the queue's delivery_limit={self.limit})"
        )


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message, as ``list`` prints it."""

    id: str
    task: str
    args: Any
    kwargs: Any
    #: Deliveries that ended without the task finishing; None where the broker does not say.
    deliveries: int | None
    #: Why it is here: one of ``worker.REASONS``, or the broker's own reason.
    reason: str
    #: The exception or decoding error, as ``Type: message``; empty where there was none.
    error: str
    queue: str
    dead_lettered_at: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def describe(error: BaseException | None) -> str:
    """``Type: message`` of an error, for the dead letter's ``error`` field."""
    if error is None:
        return ""
    # Celery's Reject keeps its text in ``reason`` (its str() is a tuple).
    text = str(getattr(error, "reason", None) or error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def message_id(headers: dict[str, Any] | None, properties: dict[str, Any], body: Any) -> str:
    """The task id of a message; for one without, a digest of its body, so it can be named."""
    task_id = (headers or {}).get("id") or properties.get("correlation_id")
    if task_id:
        return str(task_id)
    raw = body if isinstance(body, bytes) else str(body).encode()
    return "sha1:" + hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:16]


def timestamp(moment: datetime.datetime | float) -> str:
    """``moment`` (a UTC datetime or a Unix time) in ISO 8601 with its zone."""
    if isinstance(moment, datetime.datetime):
        moment = moment.replace(tzinfo=moment.tzinfo or datetime.UTC)
    else:
        moment = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return moment.isoformat(timespec="seconds")
