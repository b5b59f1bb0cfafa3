"""The base class of every task (the app's ``task_cls``): retries, completion markers, delivery
limit, logs."""

import logging
import random
import time
from typing import Any

from celery import Task
from celery.exceptions import Reject, Retry, SoftTimeLimitExceeded

from . import completion, config
from .dead_letters import store as dead_letters
from .locks import LockHeld

logger = logging.getLogger(__name__)
_config = config.current()


class BaseTask(Task):
    # Any exception retries the task, except those that a retry cannot cure (a task past its soft
    # time limit would only be cut off again), LockHeld, which waits on its own budget, and
    # Reject, the task's own decision about its message.
    # https://docs.celeryq.dev/en/stable/userguide/tasks.html#automatic-retry-for-known-exceptions
    autoretry_for = (Exception,)
    dont_autoretry_for: tuple[type[BaseException], ...] = (
        SoftTimeLimitExceeded,
        LockHeld,
        Reject,
    )
    max_retries = _config.max_retries
    # Countdowns of 1, 2, 4, 8... seconds, full jitter so failed tasks do not retry in lockstep,
    # capped by TASK_RETRY_BACKOFF_MAX, which the Redis visibility timeout is derived from.
    retry_backoff = True
    retry_backoff_max = _config.retry_backoff_max
    retry_jitter = True
    #: Skip a redelivery of a task id that already succeeded (see completion.py).
    completion_marker = True
    #: Message header carrying when a task first found its lock held.
    WAITING_SINCE = "lock_waiting_since"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task_id = self.request.id
        if not task_id or self.request.called_directly:
            return super().__call__(*args, **kwargs)
        if self.completion_marker and completion.is_completed(task_id):
            self.log(logging.INFO, "task.skipped", reason="already_completed")
            return None
        try:
            dead_letters.count_delivery(self)
        except Reject:
            self.log(logging.ERROR, "task.dead_lettered", reason="delivery_limit")
            raise
        try:
            result = super().__call__(*args, **kwargs)
        except LockHeld as held:
            raise self.retry_when_free(held) from held
        except Reject as reject:
            if not reject.requeue:
                dead_letters.record_rejected(self)
                self.log(logging.ERROR, "task.dead_lettered", reason="rejected")
            raise
        finally:
            # The run ended and this process lives on: the delivery does not count (Redis).
            dead_letters.forget_deliveries(self)
        if self.completion_marker:
            completion.mark_completed(task_id)
        return result

    def retry_when_free(self, held: LockHeld) -> Retry:
        """Publish this task again after a countdown, without counting a retry.

        Waiting for another run is not a failure, so it leaves ``retries`` alone and is bounded
        by time instead: a live holder ends within the hard time limit, a dead holder's lock
        expires within LOCK_TTL. A wait longer than ``lock_wait_limit`` means something else is
        wrong, and from then on each wait is an ordinary retry, bounded by ``max_retries``.
        """
        since = float(getattr(self.request, self.WAITING_SINCE, None) or time.time())
        waited = time.time() - since
        # Within the Redis visibility rule: never longer than TASK_RETRY_BACKOFF_MAX.
        countdown = min(_config.lock_ttl, _config.retry_backoff_max) * random.uniform(0.5, 1)  # noqa: S311
        if waited > _config.lock_wait_limit:
            return self.retry(exc=held, countdown=countdown)
        self.log(logging.INFO, "task.lock_held", key=held.key, waited=f"{waited:.1f}")
        headers = {**(self.request.headers or {}), self.WAITING_SINCE: since}
        self.signature_from_request(
            self.request, countdown=countdown, headers=headers
        ).apply_async()
        return Retry(f"{held}; trying again in {countdown:.1f} s", when=countdown)

    def log_fields(self) -> dict[str, Any]:
        """What identifies this delivery in a log line."""
        request = self.request
        return {
            "task": self.name,
            "task_id": request.id,
            "retries": request.retries,
            "redelivered": bool((request.delivery_info or {}).get("redelivered")),
        }

    def log(self, level: int, event: str, **fields: Any) -> None:
        """Log ``event`` as one line of key=value pairs, with the delivery's fields."""
        pairs = {"event": event, **self.log_fields(), **fields}
        logger.log(level, " ".join(f"{key}={value}" for key, value in pairs.items()), extra=pairs)

    def before_start(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.log(logging.INFO, "task.started")

    def on_success(
        self, retval: Any, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.log(logging.INFO, "task.succeeded")

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        self.log(logging.WARNING, "task.retrying", error=type(exc).__name__)

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        self.log(logging.ERROR, "task.failed", error=type(exc).__name__)
