"""A stop that takes as long as the work: SIGTERM waits for running tasks, never past the window.

SIGTERM starts Celery's warm shutdown, which ends as soon as the running tasks have finished;
when the window ends, SIGQUIT turns it into Celery's cold shutdown, which cancels what still
runs and hands its messages back before ECS sends SIGKILL.
"""

import contextlib
import os
import signal
import threading
from functools import cache
from typing import Any

from celery import bootsteps

from . import config, logs

log = logs.get(__name__)

#: Set by the first stop signal: a second SIGTERM or Ctrl+C starts no second timer.
STOPPING = threading.Event()


@cache
def wake_pipe() -> tuple[int, int]:
    """The pipe a stop writes to; its read end is in the event loop's poll set."""
    ends = os.pipe()
    for end in ends:
        os.set_blocking(end, False)
    return ends


def drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        os.read(fd, 64)


class WakeOnStop(bootsteps.StartStopStep):
    """Consumer step: the event loop sees a stop at once, not after its poll timeout (<= 10 s)."""

    def register_with_event_loop(self, parent: Any, hub: Any) -> None:
        hub.add_reader(wake_pipe()[0], drain, wake_pipe()[0])


def bound_warm_shutdown(sig: str, how: str, **_: Any) -> None:
    """``worker_shutting_down`` receiver: wake the loop; SIGQUIT once the window has passed."""
    if how != "Warm" or STOPPING.is_set():
        return
    STOPPING.set()
    window = config.current().soft_shutdown_timeout
    timer = threading.Timer(window, cut_off, (window,))
    timer.daemon = True
    timer.start()
    os.write(wake_pipe()[1], b"\0")
    log.info("worker.stopping", signal=sig, cancel_in=window)


def cut_off(window: float) -> None:
    log.warning("worker.cutting_off", reason=f"tasks still run {window:g} s after the stop")
    os.kill(os.getpid(), signal.SIGQUIT)
