"""Celery settings: the core's, each with its reason and a link to Celery's docs, then the
service's own (``service_settings.CELERY_OVERRIDES``), merged last and checked.

The broker-specific part lives in ``broker.py``; the values come from ``config.py``.
"""

import importlib.util
import pkgutil
from collections.abc import Mapping
from typing import Any

from celery.app.defaults import DEFAULTS

from .. import schedules, service_settings
from . import broker
from .config import Config, ConfigError

#: Seconds a publish waits for a broker that restarts or fails over, then raises to the caller
#: (docs/design_decisions.md, "Publishing through a broker restart").
PUBLISH_RETRY_SECONDS = 30
#: A publish that met a lost connection: kombu reconnects and publishes again, sleeping 0, 1, 2, 3,
#: then 4 s between attempts (30 s in all). With failover URLs each host tried is one retry.
PUBLISH_RETRY_POLICY = {
    "max_retries": 10,
    "interval_start": 0,
    "interval_step": 1,
    "interval_max": 4,
}
#: The service's tasks: every module of this package is registered. Found by name, so the core
#: imports nothing from it.
TASKS_PACKAGE = f"{__name__.partition('.')[0]}.tasks"
#: Settings the core sets from the configuration: an override must set them there instead, so
#: the rules of ``config.py`` and the values derived from them (lock TTL, visibility) see them.
FROM_CONFIGURATION = {
    "broker_url": "the environment: set CELERY_BROKER_URL",
    "result_backend": "the environment: set CELERY_RESULT_BACKEND",
    "task_ignore_result": "the environment: set CELERY_RESULT_BACKEND",
    "broker_heartbeat": "the environment: set BROKER_HEARTBEAT",
    "task_queues": "queues.py: add the queue there",
    "task_default_queue": "queues.py: the first queue is the default",
    "task_soft_time_limit": "queues.py: set the queue's soft_time_limit",
    "task_time_limit": "queues.py: set the queue's time_limit",
    "worker_concurrency": "queues.py: set the queue's concurrency",
    "worker_prefetch_multiplier": "queues.py: set the queue's prefetch_multiplier",
}
#: Settings the core sets that guarantee nothing: the service may change them. Every other
#: setting the core sets is a guarantee and keeps the core's value.
ADJUSTABLE = ("enable_utc", "timezone")


def task_modules() -> list[str]:
    """The modules of the tasks package, found on disk (Celery imports them)."""
    spec = importlib.util.find_spec(TASKS_PACKAGE)
    paths = spec.submodule_search_locations if spec else None
    found = pkgutil.iter_modules(paths or [])
    return sorted(f"{TASKS_PACKAGE}.{module.name}" for module in found)


def celery_settings(config: Config) -> dict[str, Any]:
    """The complete Celery configuration: the core's, then the service's overrides.

    Raises ConfigError, one line per override that breaks a rule.
    """
    core = core_settings(config)
    overrides = service_settings.CELERY_OVERRIDES
    problems = override_problems(core, overrides)
    if problems:
        raise ConfigError(problems)
    return {**core, **overrides}


def override_problems(core: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[str]:
    """Why overrides are refused: not Celery settings, set by the environment, or guarantees."""
    problems = []
    for name, value in overrides.items():
        shown = f"{name}={value!r} (service_settings.CELERY_OVERRIDES)"
        if name not in DEFAULTS:
            problems.append(
                f"{shown}: must be a Celery setting (lower case, "
                "https://docs.celeryq.dev/en/stable/userguide/configuration.html)"
            )
        elif name not in core or name in ADJUSTABLE or value == core[name]:
            continue
        elif name in FROM_CONFIGURATION:
            problems.append(
                f"{shown}: must come from {FROM_CONFIGURATION[name]}, whose rules the worker checks"
            )
        else:
            problems.append(
                f"{shown}: must stay {core[name]!r}, a guarantee of the core (its reason is "
                "beside it in core/celery_settings.py or core/broker.py)"
            )
    return problems


def core_settings(config: Config) -> dict[str, Any]:
    """The core's Celery settings for ``config``."""
    broker_settings = broker.settings(config)
    return {
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-url
        "broker_url": config.broker_url,
        # The service's queues (queues.py), each known by its name in queues.py (``--queues``,
        # ``@app.task(queue=...)``), named ``<BROKER_NAMESPACE>.<name>`` on the broker. A task
        # routed to any other queue is refused instead of creating it.
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-queues
        "task_queues": [broker.task_queue(config, queue) for queue in config.queues],
        "task_default_queue": config.broker_queue(config.queues[0].name),
        "task_create_missing_queues": False,
        # Remote control and events on exchanges of the service's own: on Celery's ``celery``
        # and ``celeryev``, any Celery app sharing the vhost or Redis database would reach this
        # service's workers (``celery control shutdown`` included).
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#control-exchange
        "control_exchange": config.namespace,
        "event_exchange": f"{config.namespace}.events",
        # Results are off unless CELERY_RESULT_BACKEND is set: the tasks' effects live in the
        # database, and an unread result store only grows. https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-ignore-result
        "result_backend": config.result_backend or None,
        "task_ignore_result": not config.result_backend,
        # Acknowledge a message only after its task ran, so a worker stopped mid-task leaves the
        # message for another worker instead of losing it. https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late
        "task_acks_late": True,
        # A failed task's message is rejected, not acknowledged: it goes to the dead letters
        # (dead_letters/worker.py), and a task cut off by its hard time limit is delivered again.
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-on-failure-or-timeout
        "task_acks_on_failure_or_timeout": False,
        # Messages the worker cannot run (undecodable, unknown task) go to the dead letters too.
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-consumer
        "worker_consumer": f"{__package__}.dead_letters.worker:Consumer",
        # When the child process running a task dies (SIGKILL, OOM, the soft-limit guard), give the
        # message back to the broker instead of acknowledging it as failed.
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-reject-on-worker-lost
        "task_reject_on_worker_lost": True,
        # One message per process by default: no task waits in a busy worker's memory while
        # another worker idles. A queue of short tasks may reserve more, as much as its workers
        # could finish inside the stop window (rules.prefetch_rule). https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-prefetch-multiplier
        "worker_prefetch_multiplier": config.prefetch_multiplier,
        # A publish (apply_async, a retry, a continuation) rides through a broker restart or
        # failover instead of raising after Celery's 0.6 s; past ~30 s it raises to the caller.
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-publish-retry-policy
        "task_publish_retry": True,
        "task_publish_retry_policy": PUBLISH_RETRY_POLICY,
        # ECS may start the container before the broker answers: keep retrying instead of exiting.
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-connection-retry-on-startup
        "broker_connection_retry_on_startup": True,
        # On a lost broker connection the unacknowledged messages are redelivered elsewhere:
        # stop the tasks still running them, or they run twice at once.
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-cancel-long-running-tasks-on-connection-loss
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # The soft limit raises SoftTimeLimitExceeded so the task can clean up; the hard limit kills
        # the child. Both fit the queue's ECS stop window (rules.py); a worker takes its queue's
        # (worker_checks.py). https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-time-limit
        "task_soft_time_limit": config.soft_time_limit,
        "task_time_limit": config.time_limit,
        # ECS's SIGTERM starts the warm shutdown, which ends when the running tasks do; at the end
        # of WORKER_SOFT_SHUTDOWN_TIMEOUT shutdown.py turns it cold. Celery's own soft shutdown
        # would sleep that whole time before the cold shutdown cancels anything: off.
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-soft-shutdown-timeout
        "worker_soft_shutdown_timeout": 0,
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-concurrency
        "worker_concurrency": config.concurrency,
        # JSON only: no pickle, so a message can never execute code on the worker.
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-serializer
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # Leave the root logger to the service (logs.py); Celery adds its handlers beside it.
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-hijack-root-logger
        "worker_hijack_root_logger": False,
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#enable-utc
        "enable_utc": True,
        "timezone": "UTC",
        # Every module of the tasks package, so a module dropped there is registered.
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#imports
        "imports": task_modules(),
        # Each tick published once, however many beats run (beat.py); the service's schedules.
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#beat-scheduler
        "beat_scheduler": f"{__package__}.beat:ExactlyOnceScheduler",
        "beat_schedule": schedules.SCHEDULES,
        **broker_settings,
        # A publish on a connection not made yet (a new process, a fresh pooled connection) waits
        # for the broker as long, instead of kombu's connect timeout (4 s).
        # https://docs.celeryq.dev/projects/kombu/en/stable/reference/kombu.connection.html#kombu.connection.Connection.default_channel
        "broker_transport_options": {
            **broker_settings["broker_transport_options"],
            "connect_retries_timeout": PUBLISH_RETRY_SECONDS,
        },
    }
