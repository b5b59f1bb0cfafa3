"""Publishing many tasks at once, every message confirmed by the broker: what a fan-out needs.

``apply_async`` waits for the broker after every message (RabbitMQ's publisher confirm with
``confirm_publish``, Redis's reply to each LPUSH) and spends about a millisecond of Python per
message: a few hundred to 700 messages a second, so 100,000 children would take longer than the
whole ECS stop window. ``Publisher`` makes Celery build one message for the task (Celery's own
``create_task_message``) and publishes copies that differ only in task id and arguments, a batch
at a time without waiting, then waits once for the broker to confirm the whole batch
(``confirms.py``: RabbitMQ's publisher confirms acknowledged in bulk, or one Redis pipeline).

When ``publish`` returns, the broker holds every message it was given. When it raises, some of
them may have reached the broker: publish the batch again, with deterministic task ids, so that
the completion markers skip the copies of those that already ran.

Usage, inside a task::

    with Publisher(send_newsletter_to_user, parent=self.request) as publisher:
        publisher.publish([(child_id(user_id), (newsletter, user_id)) for user_id in chunk])

Messages published this way bypass Celery's ``before_task_publish``/``after_task_publish``
signals and its routing per call: they go to the task's queue as routed by the app.
"""

from collections.abc import Sequence
from types import TracebackType
from typing import Any

from celery import Task

from .confirms import ConfirmedChannel

#: Messages published between two waits for the broker: large enough that the wait costs little
#: per message, small enough that a batch that failed is quick to publish again.
BATCH_SIZE = 1000

Call = tuple[str, tuple[Any, ...]]


class Publisher:
    """Publishes calls of one task in batches, each batch confirmed by the broker."""

    def __init__(self, task: Task, parent: Any = None) -> None:
        app = task.app
        self.root_id = (parent.root_id or parent.id) if parent is not None else None
        parent_id = parent.id if parent is not None else None
        headers, properties, body, _ = app.amqp.create_task_message(
            "",
            task.name,
            (),
            {},
            root_id=self.root_id,
            parent_id=parent_id,
            ignore_result=bool(task.ignore_result),
            reply_to=app.thread_oid,
        )
        self.headers: dict[str, Any] = headers
        self.properties: dict[str, Any] = properties
        self.embed = body[2]
        queue = app.amqp.router.route({}, task.name, (), {}, task)["queue"]
        direct = queue.exchange.type == "direct"
        self.options = {
            # Celery sends direct-exchange messages to the default exchange, keyed by queue name.
            "exchange": "" if direct else queue.exchange.name,
            "routing_key": queue.name if direct else queue.routing_key,
            "serializer": app.conf.task_serializer,
            "compression": app.conf.task_compression,
            "delivery_mode": queue.exchange.delivery_mode or app.conf.task_default_delivery_mode,
        }
        self.channel = ConfirmedChannel(app, queue, BATCH_SIZE)

    def publish(self, calls: Sequence[Call]) -> None:
        """Publish ``(task_id, args)`` calls; return once the broker confirmed every one."""
        for start in range(0, len(calls), BATCH_SIZE):
            for task_id, args in calls[start : start + BATCH_SIZE]:
                headers = {
                    **self.headers,
                    "id": task_id,
                    "root_id": self.root_id or task_id,
                    "argsrepr": repr(args),
                }
                properties = {**self.properties, "correlation_id": task_id}
                self.channel.publish(
                    (args, {}, self.embed), headers=headers, **properties, **self.options
                )
            self.channel.confirm()

    def close(self, discard: bool = False) -> None:
        """Close the connection; ``discard`` drops messages not yet sent, where the broker can."""
        self.channel.close(discard)

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(discard=exc_type is not None)
