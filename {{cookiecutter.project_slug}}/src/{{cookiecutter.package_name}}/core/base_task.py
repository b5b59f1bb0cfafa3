"""The base class of every task (the app's ``task_cls``): transient retries, completion markers,
delivery counting, logs. What a failed delivery becomes is decided in ``dead_letters.worker``."""

import time
from typing import Any

from celery import Task
from celery.exceptions import Reject, Retry, SoftTimeLimitExceeded

from . import completion, config, logs, metrics, redis_client, retries
from .dead_letters import store as dead_letters
from .locks import LockHeld

log = logs.get(__name__)
_config = config.current()


class BaseTask(Task):
    # Only errors that time can cure are retried; any other exception sends the message to the
    # dead letters at once. https://docs.celeryq.dev/en/stable/userguide/tasks.html#automatic-retry-for-known-exceptions
    autoretry_for = retries.TRANSIENT_ERRORS
    # Never retried, even by a task that widens autoretry_for: a task past its soft time limit
    # would only be cut off again, LockHeld waits on its own budget, Reject is the task's decision.
    dont_autoretry_for: tuple[type[BaseException], ...] = (SoftTimeLimitExceeded, LockHeld, Reject)
    max_retries = _config.max_retries
    # The countdown comes from retry() below (a floor under each one), not Celery's full jitter.
    retry_backoff = False
    #: Records every message that leaves without success in the dead letters first.
    Request = f"{__package__}.dead_letters.worker:DeadLetteringRequest"
    #: Skip a redelivery of a task id that already succeeded (see completion.py).
    completion_marker = True
    #: Message header carrying when a task first found its lock held.
    WAITING_SINCE = "lock_waiting_since"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task_id = self.request.id
        if not task_id or self.request.called_directly:
            return super().__call__(*args, **kwargs)
        try:
            if self.completion_marker and completion.is_completed(task_id):
                log.info("task.skipped", reason="already_completed")
                return None
            dead_letters.count_delivery(self)
        except redis_client.ERRORS as error:
            raise self.defer(error) from error
        try:
            result = super().__call__(*args, **kwargs)
        except LockHeld as held:
            raise self.retry_when_free(held) from held
        finally:
            self.forget_deliveries()
        if self.completion_marker:
            self.mark_completed()
        return result

    def retry(self, *args: Any, **options: Any) -> Retry:
        """Celery's retry, with this service's countdown; requeues if it cannot be published."""
        if len(args) < 5 and options.get("eta") is None and options.get("countdown") is None:
            options["countdown"] = retries.countdown(
                self.request.retries, _config.retry_first_countdown, _config.retry_backoff_max
            )
        try:
            return super().retry(*args, **options)
        except Reject as unpublished:
            # Celery rejects the message for good when the retry cannot be published.
            raise Reject(unpublished.reason, requeue=True) from unpublished

    def defer(self, error: Exception) -> Retry:
        """Run this delivery again later without counting a retry: Redis failed, not the task."""
        countdown = retries.countdown(0, _config.retry_first_countdown, _config.retry_backoff_max)
        log.warning("task.deferred", error=type(error).__name__)
        return self.republish(countdown, self.request.headers or {}, error)

    def retry_when_free(self, held: LockHeld) -> Retry:
        """Publish this task again after a countdown, without counting a retry.

        A wait longer than ``lock_wait_limit`` means something else is wrong: from then on each
        wait is an ordinary retry, bounded by ``max_retries`` (docs/design_decisions.md).
        """
        since = float(getattr(self.request, self.WAITING_SINCE, None) or time.time())
        waited = time.time() - since
        countdown = retries.countdown(0, _config.lock_ttl, _config.retry_backoff_max)
        if waited > _config.lock_wait_limit:
            return self.retry(exc=held, countdown=countdown)
        log.info("task.lock_held", key=held.key, waited=f"{waited:.1f}")
        headers = {**(self.request.headers or {}), self.WAITING_SINCE: since}
        return self.republish(countdown, headers, held)

    def republish(self, countdown: float, headers: dict[str, Any], why: Exception) -> Retry:
        """Publish this delivery again (same id and retries) after ``countdown``; else requeue."""
        try:
            self.signature_from_request(
                self.request, countdown=countdown, headers=headers
            ).apply_async()
        except Exception as error:
            raise Reject(f"{why}; could not publish it again: {error}", requeue=True) from error
        return Retry(f"{why}; trying again in {countdown:.1f} s", exc=why, when=countdown)

    def forget_deliveries(self) -> None:
        """The run ended with its process alive: it does not count against the delivery limit."""
        try:
            dead_letters.forget_deliveries(self)
        except redis_client.ERRORS as error:
            log.warning("task.delivery_count_kept", error=type(error).__name__)

    def mark_completed(self) -> None:
        """Write the completion marker; a Redis failure here does not undo the task's success."""
        try:
            completion.mark_completed(self.request.id)
        except redis_client.ERRORS as error:
            log.warning("task.marker_not_written", error=type(error).__name__)

    def before_start(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.request.started_at = time.monotonic()
        log.info("task.started")

    def run_metrics(self, *counted: str) -> dict[str, Any]:
        """Log fields: the run's duration, and 1 of each ``counted`` metric (TaskFailures...)."""
        started = getattr(self.request, "started_at", None) or time.monotonic()
        return metrics.emf(
            metrics.Metric(
                "TaskDuration", time.monotonic() - started, "Seconds", metrics.BY_QUEUE_AND_TASK
            ),
            *(metrics.Metric(name, 1, "Count") for name in counted),
            queue=config.queue_of(self.request.delivery_info),
            task=self.name,
        )

    def on_success(
        self, retval: Any, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        log.info("task.succeeded", **self.run_metrics())

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        log.warning("task.retrying", error=type(exc).__name__, **self.run_metrics("TaskRetries"))

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        log.error("task.failed", error=type(exc).__name__, **self.run_metrics("TaskFailures"))
