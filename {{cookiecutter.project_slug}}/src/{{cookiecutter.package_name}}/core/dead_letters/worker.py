"""The worker's main process: a message that leaves the broker without success is recorded first.

Celery rejects a failed task's message (``task_acks_on_failure_or_timeout=False``) and rejects or
acknowledges messages it cannot run. ``DeadLetteringRequest`` and ``Consumer`` record each of them
in the store before that happens; a message that cannot be recorded goes back to its queue.
Overrides Celery 5.7's ``Request.on_failure``/``reject`` and ``Consumer.on_*`` (pinned).
"""

import logging
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from celery.exceptions import Reject, SoftTimeLimitExceeded, TimeLimitExceeded
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.request import Request
from kombu.exceptions import ContentDisallowed
from kombu.message import Message

from .. import config, logs, metrics
from ..locks import LockHeld
from . import DeliveryLimitExceeded, describe, store

log = logs.get(__name__)

#: Every reason a message can have in the dead letters, and what it means.
REASONS = {
    "failed": "the task raised a permanent (not transient) error",
    "retries_exhausted": "a transient error outlasted TASK_MAX_RETRIES retries",
    "time_limit": "the task reached its soft time limit",
    "rejected": "the task raised Reject(requeue=False)",
    "delivery_limit": "the queue's delivery_limit deliveries ended without the task finishing",
    "undecodable": "the body cannot be decoded, or its content type is not accepted",
    "unknown_task": "no task of this name is registered in the worker",
    "not_a_task": "the message has no Celery task headers",
    "invalid": "the message is not a valid task message",
}


def reason_for(error: BaseException, task: Any, retries: int) -> str:
    """Why a task's failure ends its message (see REASONS)."""
    if isinstance(error, DeliveryLimitExceeded):
        return "delivery_limit"
    if isinstance(error, Reject):
        return "rejected"
    if isinstance(error, SoftTimeLimitExceeded | TimeLimitExceeded):
        return "time_limit"
    retried = (*task.autoretry_for, LockHeld)
    if isinstance(error, retried) and task.max_retries is not None and retries >= task.max_retries:
        return "retries_exhausted"
    return "failed"


def dead_letter(message: Message, reason: str, error: BaseException | None) -> bool:
    """Record ``message`` in the store; False (and a log line) if it could not be recorded."""
    deliveries = error.deliveries if isinstance(error, DeliveryLimitExceeded) else None
    headers = message.headers if isinstance(message.headers, dict) else {}
    fields = {"task": headers.get("task"), "task_id": headers.get("id"), "reason": reason}
    try:
        store.record(message, reason, describe(error), deliveries)
    except store.RECORD_ERRORS as failure:
        log.error("task.not_dead_lettered", **fields, error=type(failure).__name__)
        return False
    log.error(
        "task.dead_lettered",
        **fields,
        error=describe(error),
        **metrics.emf(
            metrics.Metric("DeadLetters", 1, "Count"), queue=config.queue_of(message.delivery_info)
        ),
    )
    return True


class DeadLetteringRequest(Request):
    """A task's request whose message is recorded before it is rejected without requeue."""

    failure: BaseException | None = None

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> Any:
        error = exc_info.exception
        self.failure = error.exc if isinstance(error, ExceptionWithTraceback) else error
        return super().on_failure(exc_info, send_failed_event, return_ok)

    def reject(self, requeue: bool = False) -> None:
        if not requeue and not self.acknowledged:
            reason = (
                reason_for(self.failure, self.task, self._context.retries)
                if self.failure
                else "rejected"
            )
            requeue = not dead_letter(self._message, reason, self.failure)
        super().reject(requeue)


class Consumer(CeleryConsumer):
    """Celery's consumer; messages that cannot run go to the dead letters, not away."""

    def _dead_letter(self, message: Message, reason: str, error: BaseException | None) -> bool:
        if dead_letter(message, reason, error):
            return True
        message.requeue()
        return False

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        # Celery acknowledges such a message (it is gone); the remote control's stay Celery's.
        if "pidbox" in str(message.delivery_info.get("exchange")):
            super().on_decode_error(message, exc)
        elif self._dead_letter(message, "undecodable", exc):
            message.reject_log_error(logging.getLogger(__name__), self.connection_errors)

    def on_unknown_message(self, body: Any, message: Message) -> None:
        if self._dead_letter(message, "not_a_task", None):
            super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Message, exc: Exception) -> None:
        if self._dead_letter(message, "unknown_task", exc):
            super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Message, exc: Exception) -> None:
        reason = "undecodable" if isinstance(exc, ContentDisallowed) else "invalid"
        if self._dead_letter(message, reason, exc):
            super().on_invalid_task(body, message, exc)
