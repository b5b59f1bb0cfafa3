"""No two runs of the same work at once: a Redis lock held for the whole run of a task.

Built on redis-py's ``Lock``: the lock is owned by a random token, released and extended by a
Lua compare-and-set, so a worker can never release or extend a lock it no longer owns (the
article's SET NX + DEL deletes whoever holds the key by then). While the task runs, a thread
extends the lock; when the worker dies, the lock expires after ``lock_ttl`` seconds.

Usage::

    @app.task(bind=True)
    @no_parallel_processing
    def send_newsletter(self, user_id): ...

    @app.task(bind=True)
    @no_parallel_processing(key=lambda user_id: f"user:{user_id}")
    def sync_user(self, user_id): ...

When the lock is held elsewhere the task raises ``LockHeld``; the base task answers with a retry
after a countdown that does not count against ``max_retries`` (``BaseTask.retry_when_free``).
"""

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, overload

from redis.exceptions import LockError
from redis.lock import Lock

from . import config, logs
from .redis_client import client

log = logs.get(__name__)

F = TypeVar("F", bound=Callable[..., Any])
PREFIX = "lock:"


class LockHeld(Exception):
    """Another run holds the lock; the task must wait for it, not fail."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key} is held by another run")
        self.key = key


class _Extender(threading.Thread):
    """Extends a lock every third of its TTL until stopped."""

    def __init__(self, lock: Lock, ttl: float) -> None:
        super().__init__(name=f"extend {lock.name!r}", daemon=True)
        self.lock = lock
        self.ttl = ttl
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.ttl / 3):
            try:
                self.lock.extend(self.ttl, replace_ttl=True)
            except LockError:
                log.critical("lock.lost", key=self.lock.name, why="expired or taken over")
                return


@contextmanager
def task_lock(key: str, ttl: float | None = None) -> Iterator[Lock]:
    """Hold the lock ``key`` for the block, extended while it runs; raise LockHeld if taken."""
    ttl = ttl or config.current().lock_ttl
    lock = client().lock(PREFIX + key, timeout=ttl, blocking=False, thread_local=False)
    if not lock.acquire():
        raise LockHeld(key)
    extender = _Extender(lock, ttl)
    extender.start()
    try:
        yield lock
    finally:
        extender.stopped.set()
        extender.join()
        try:
            lock.release()
        except LockError:
            log.error("lock.not_released", key=key, why="expired or taken over")


@overload
def no_parallel_processing(func: F) -> F: ...
@overload
def no_parallel_processing(*, key: Callable[..., str]) -> Callable[[F], F]: ...


def no_parallel_processing(
    func: F | None = None, *, key: Callable[..., str] | None = None
) -> F | Callable[[F], F]:
    """Run a bound task under a lock: by task id, or by ``key(*args, **kwargs)`` of the work."""

    def decorate(run: F) -> F:
        @functools.wraps(run)
        def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
            name = key(*args, **kwargs) if key else self.request.id
            with task_lock(f"{self.name}:{name}"):
                return run(self, *args, **kwargs)

        return locked  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate
