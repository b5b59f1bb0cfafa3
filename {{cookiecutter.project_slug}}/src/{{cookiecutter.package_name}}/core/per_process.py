"""The one fork-safety mechanism: objects holding sockets are made per process, after the fork.

The worker's main process forks its pool processes; a Redis client or a database engine made
before the fork would share its sockets with every child. ``PerProcess`` makes the object on
first use in each process and, in a forked child, forgets the inherited one without closing it
(closing would close the parent's connections too).
"""

import os
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """``get()`` returns this process's object, made by ``make`` on first use."""

    def __init__(self, make: Callable[[], T], forget: Callable[[T], None] = lambda _: None) -> None:
        self._make = make
        self._forget = forget
        self._value: T | None = None
        os.register_at_fork(after_in_child=self._after_fork)

    def get(self) -> T:
        if self._value is None:
            self._value = self._make()
        return self._value

    def _after_fork(self) -> None:
        if self._value is not None:
            self._forget(self._value)
        self._value = None
