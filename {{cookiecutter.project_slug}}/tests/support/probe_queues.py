"""Two queues of the tests' own beside queues.py's, each with limits and a stop window of its own.

Their workers run ``--app=tests.support.queues_app`` (the service's app with these queues added);
the tests publish through ``publisher()``, configured from the same definitions.
"""

import os
from collections.abc import Mapping

from celery import Celery

from {{ cookiecutter.package_name }} import queues
from {{ cookiecutter.package_name }}.core import config
from {{ cookiecutter.package_name }}.core.celery_settings import celery_settings
from {{ cookiecutter.package_name }}.core.queues import Queue

#: Reserves two messages per process: as much as it could finish in its 10 s window.
FAST = Queue(
    "probe-fast",
    concurrency=1,
    prefetch_multiplier=2,
    soft_time_limit=4.5,
    time_limit=5,
    stop_timeout=20,
    cpu=256,
    memory=512,
)
#: One message per process, two processes, a stop window of 6 s.
SLOW = Queue(
    "probe-slow",
    concurrency=2,
    soft_time_limit=5,
    time_limit=5.5,
    stop_timeout=12,
    cpu=256,
    memory=512,
)
PROBE_QUEUES = (FAST, SLOW)
QUEUES = (*queues.QUEUES, *PROBE_QUEUES)
APP = "tests.support.queues_app"


def publisher(env: Mapping[str, str] | None = None) -> Celery:
    """A client app that knows the probe queues, configured like the service otherwise."""
    app = Celery("probe-queues", set_as_current=False)
    settings = config.from_env({**os.environ, **(env or {})}, queues=QUEUES)
    app.conf.update(celery_settings(settings))
    return app
