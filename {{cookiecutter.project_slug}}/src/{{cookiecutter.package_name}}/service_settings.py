"""The service's own Celery settings, merged last over the core's (``core/celery_settings.py``).

Add what the core does not set (routes, rate limits...; the beat's schedules go in
``schedules.py``). A setting the core sets is a guarantee or comes from the environment: changing
it here stops the worker at start, naming the setting, its value and the rule.
"""

from typing import Any

#: Celery setting -> value, e.g. ``{"worker_max_tasks_per_child": 1000}`` for a leaky library.
CELERY_OVERRIDES: dict[str, Any] = {}
