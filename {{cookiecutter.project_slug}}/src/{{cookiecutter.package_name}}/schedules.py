"""The service's periodic tasks, which the beat publishes once per tick (``core/beat.py``).

Schedule name -> Celery's beat entry: ``task`` (its name), ``schedule`` (a ``crontab`` or a
``timedelta``, UTC), optional ``args``, ``kwargs`` and ``options``. A task reads its tick with
``beat.tick_of(self.request)``. A renamed schedule is a new one: it starts at its next tick.
"""

from typing import Any

from celery.schedules import crontab

SCHEDULES: dict[str, dict[str, Any]] = {
    # The newsletter example: every Monday at 08:00 UTC (tasks/newsletter.py).
    "weekly-newsletter": {
        "task": "send_weekly_newsletter",
        "schedule": crontab(minute="0", hour="8", day_of_week="mon"),
    },
}
