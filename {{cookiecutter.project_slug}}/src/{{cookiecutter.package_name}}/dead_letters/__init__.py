"""Dead letters: tasks set aside instead of being delivered again and again.

``task_acks_late`` with ``task_reject_on_worker_lost`` hands a message back whenever the process
running it dies, so a task that kills its worker every time (out of memory, a crashing library,
a soft time limit it swallows) would be delivered forever. After ``TASK_DELIVERY_LIMIT``
deliveries that ended without the task finishing, the message is moved to a dead-letter store
instead (``store.py``, one per broker: RabbitMQ's own delivery limit and dead-letter queue, or a
delivery counter and a list in Redis). Tasks that reject their message (``Reject(requeue=False)``)
end there too. ``python -m {{ cookiecutter.package_name }}.dead_letters`` lists, requeues and purges them.

The limit is separate from ``max_retries``: a retry is a failure the task saw and reported, a
dead letter is a delivery that never came back.
"""

import datetime
from dataclasses import asdict, dataclass
from typing import Any


class DeadLetterError(Exception):
    """A dead-letter command could not be carried out; the message says why."""


class UnknownDeadLetters(DeadLetterError):
    """Some task ids are not in the dead-letter store; nothing was changed."""

    def __init__(self, queue: str, ids: list[str]) -> None:
        self.ids = ids
        listed = ", ".join(repr(task_id) for task_id in ids)
        super().__init__(f"no dead letter with id {listed} for queue {queue!r}; nothing requeued")


class StoreUnreachable(DeadLetterError):
    """The broker (or Redis) holding the dead letters does not answer."""


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered task, as ``list`` prints it."""

    id: str
    task: str
    args: Any
    kwargs: Any
    #: Deliveries that ended without the task finishing; None where the broker does not say.
    deliveries: int | None
    #: ``delivery_limit``, ``rejected`` (the task rejected its message), or the broker's reason.
    reason: str
    queue: str
    dead_lettered_at: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def timestamp(moment: datetime.datetime | float) -> str:
    """``moment`` (a UTC datetime or a Unix time) in ISO 8601 with its zone."""
    if isinstance(moment, datetime.datetime):
        moment = moment.replace(tzinfo=moment.tzinfo or datetime.UTC)
    else:
        moment = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return moment.isoformat(timespec="seconds")
