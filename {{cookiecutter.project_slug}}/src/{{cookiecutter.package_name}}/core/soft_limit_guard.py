"""Stop a task whose soft time limit fired inside a finalizer, instead of letting it run on.

billiard delivers SoftTimeLimitExceeded by raising it from a signal handler in the pool child.
When that happens while a finalizer runs (``__del__``, a weakref callback, the garbage
collector), Python cannot propagate it: it goes to ``sys.unraisablehook``, is logged, and the
task keeps running as if no limit existed. The guard ends the child in that case, so the worker
rejects the message (``task_reject_on_worker_lost``) and the broker redelivers it. Every other
unraisable exception goes to the previous hook unchanged.
"""

import logging
import os
import sys
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from . import logs

log = logs.get(__name__)

#: Exit status of a child ended by the guard (EX_SOFTWARE).
EXIT_STATUS = 70


def install(**_: Any) -> None:
    """Install the guard in this process; connected to ``worker_process_init``."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, SoftTimeLimitExceeded):
            # The pool process ends so the task is redelivered instead of running on unlimited.
            log.critical("task.soft_limit_swallowed", finalizer=repr(unraisable.object))
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(EXIT_STATUS)
        previous(unraisable)

    sys.unraisablehook = hook
