"""The base class of every task (the app's ``task_cls``): the retry policy and structured logs."""

import logging
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from . import config

logger = logging.getLogger(__name__)
_config = config.current()


class BaseTask(Task):
    # Any exception retries the task, except those that a retry cannot cure: a task past its soft
    # time limit would only be cut off again.
    # https://docs.celeryq.dev/en/stable/userguide/tasks.html#automatic-retry-for-known-exceptions
    autoretry_for = (Exception,)
    dont_autoretry_for: tuple[type[BaseException], ...] = (SoftTimeLimitExceeded,)
    max_retries = _config.max_retries
    # Countdowns of 1, 2, 4, 8... seconds, full jitter so failed tasks do not retry in lockstep,
    # capped by TASK_RETRY_BACKOFF_MAX, which the Redis visibility timeout is derived from.
    retry_backoff = True
    retry_backoff_max = _config.retry_backoff_max
    retry_jitter = True

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
