"""The service's app with a test's schedule, for ``celery --app tests.support.beat_app beat``.

``BEAT_TEST_ITEM`` names the probe item: one schedule, ``probe-<item>``, publishing
``probe.count_tick(item)`` every second.
"""

import os
from datetime import timedelta

from {{ cookiecutter.package_name }}.celery_app import app

from . import probe_tasks  # noqa: F401  (registers probe.count_tick with the beat's app)

ITEM = os.environ["BEAT_TEST_ITEM"]
app.conf.beat_schedule = {
    f"probe-{ITEM}": {
        "task": "probe.count_tick",
        "schedule": timedelta(seconds=1),
        "args": (ITEM,),
    }
}
