"""Service configuration: read from the environment, defaults from the project's answers.

Every value a deployment may change is read here, once, and checked as a whole: a worker with an
inconsistent configuration refuses to start and names the setting, its value and the rule it breaks.
The queues and their limits come from the service's ``queues.py``; a worker's environment may
override its own queue's limits (``QUEUE_ENVIRONMENT``).
"""

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SkipValidation, ValidationError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .. import queues as service_queues
from . import broker, defaults, rules
from .queues import Queue, broker_name, defined_as, definition_problems, shown
from .refusal import shown_url

#: Seconds of the Redis visibility timeout beyond the longest time a message may be held.
VISIBILITY_MARGIN = 60
REDIS_SCHEMES = ("redis", "rediss", "unix")
BROKER_NAMESPACE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
#: Database drivers the service installs, by backend (a ``postgresql://`` URL gets psycopg 3).
DATABASE_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg"}
#: ECS accepts a health check startPeriod of at most 300 s.
MAX_HEALTH_CHECK_START_PERIOD = 300
#: Seconds of the health check's start period left after the wait for Redis and the database:
#: enough to connect to the broker and start the pool (a few seconds here).
STARTUP_MARGIN = 30
#: A queue's settings that a worker's environment may override for that worker, by variable.
QUEUE_ENVIRONMENT = {
    "ECS_STOP_TIMEOUT": "stop_timeout",
    "TASK_SOFT_TIME_LIMIT": "soft_time_limit",
    "TASK_TIME_LIMIT": "time_limit",
    "WORKER_CONCURRENCY": "concurrency",
    "WORKER_PREFETCH_MULTIPLIER": "prefetch_multiplier",
    "LONG_TASKS": "long_tasks",
}
#: Variables only a worker reads: elsewhere no queue is the process's own.
WORKER_ENVIRONMENT = (*QUEUE_ENVIRONMENT, "WORKER_SOFT_SHUTDOWN_TIMEOUT")
#: The ECS task-protection endpoint accepts an expiry of 1-2880 minutes.
#: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection-endpoint.html
PROTECTION_MINUTES_RANGE = (1, 2880)
#: Minutes of protection beyond a hard limit and a refresh: room for failed refreshes to retry.
PROTECTION_SLACK_MINUTES = 2


class ConfigError(RuntimeError):
    """The service's configuration breaks a rule; the message lists every broken rule."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"refusing to start, the configuration is inconsistent:\n{lines}")


class Config(broker.BrokerSettings):
    """Every setting of the service; each field's alias is its environment variable.

    The queue fields are this process's queue's: a worker's own, else the default queue's.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    broker_url: str = Field(broker.DEFAULT_URL, alias="CELERY_BROKER_URL")
    #: Prefix of the service's queues and exchanges on the broker: unique per service and
    #: environment, so several share a vhost or a Redis database.
    namespace: str = Field(defaults.BROKER_NAMESPACE, alias="BROKER_NAMESPACE")
    #: Empty: results are not stored.
    result_backend: str = Field("", alias="CELERY_RESULT_BACKEND")
    redis_url: str = Field(defaults.REDIS_URL, alias="REDIS_URL")
    database_url: str = Field(defaults.DATABASE_URL, alias="DATABASE_URL")
    #: The service's queues as ``queues.py`` defines them (checked by ``definition_problems``).
    queues: Annotated[tuple[Queue, ...], SkipValidation] = Field(alias="queues")
    #: The name of this process's queue.
    queue: str = Field(alias="queue")
    #: Whether this process is a worker of ``queue``, which its environment may override.
    worker: bool = Field(alias="worker")
    #: Seconds ECS waits between SIGTERM and SIGKILL; must equal the task definition's stopTimeout.
    stop_timeout: float = Field(alias="ECS_STOP_TIMEOUT")
    #: Unset: the whole shutdown window (``soft_shutdown_timeout``).
    soft_shutdown_setting: float | None = Field(None, alias="WORKER_SOFT_SHUTDOWN_TIMEOUT")
    soft_time_limit: float = Field(alias="TASK_SOFT_TIME_LIMIT")
    time_limit: float = Field(alias="TASK_TIME_LIMIT")
    concurrency: int = Field(alias="WORKER_CONCURRENCY")
    prefetch_multiplier: int = Field(alias="WORKER_PREFETCH_MULTIPLIER")
    #: True: the hard limit may exceed the shutdown window, since scale-in protection holds
    #: scale-ins and deployments back while a task runs (docs/design_decisions.md).
    long_tasks: bool = Field(alias="LONG_TASKS")
    max_retries: int = Field(defaults.TASK_MAX_RETRIES, alias="TASK_MAX_RETRIES")
    #: Seconds before the first retry of a transient error; each further one doubles it.
    retry_first_countdown: float = Field(
        defaults.TASK_RETRY_FIRST_COUNTDOWN, alias="TASK_RETRY_FIRST_COUNTDOWN"
    )
    retry_backoff_max: int = Field(defaults.TASK_RETRY_BACKOFF_MAX, alias="TASK_RETRY_BACKOFF_MAX")
    #: Unset: derived from the hard time limit (``lock_ttl``).
    lock_ttl_setting: float | None = Field(None, alias="LOCK_TTL")
    #: Seconds a completion marker is kept: longer than any redelivery window.
    completion_marker_ttl: float = Field(
        defaults.COMPLETION_MARKER_TTL, alias="COMPLETION_MARKER_TTL"
    )
    #: Rows a batching task handles before it hands the rest to its continuation.
    batch_size: int = Field(defaults.BATCH_SIZE, alias="BATCH_SIZE")
    #: Seconds a starting worker waits for Redis and the database before it refuses to start.
    startup_dependency_timeout: float = Field(
        defaults.STARTUP_DEPENDENCY_TIMEOUT, alias="STARTUP_DEPENDENCY_TIMEOUT"
    )

    # The fleet: scale-in protection (core/protection.py) and metrics (core/metrics.py).
    #: Set by ECS in every container; empty outside ECS, where nothing is protected.
    ecs_agent_uri: str = Field("", alias="ECS_AGENT_URI")
    #: Unset: derived from the hard limit (``protection_minutes``).
    protection_minutes_setting: int | None = Field(None, alias="SCALE_IN_PROTECTION_MINUTES")
    #: Seconds between refreshes of the protection while tasks run.
    protection_refresh: float = Field(60, alias="SCALE_IN_PROTECTION_REFRESH")
    #: The CloudWatch namespace of the service's metrics.
    metrics_namespace: str = Field(defaults.SERVICE, alias="METRICS_NAMESPACE")
    #: Seconds between two queue-depth metrics (Redis only; Amazon MQ publishes its own).
    queue_depth_interval: float = Field(60, alias="QUEUE_DEPTH_INTERVAL")

    @property
    def definition(self) -> Queue:
        """This process's queue as ``queues.py`` defines it."""
        return next(queue for queue in self.queues if queue.name == self.queue)

    @property
    def own_queue(self) -> Queue:
        """This process's queue with the settings it runs with (the environment's, in a worker)."""
        values = {field: getattr(self, field) for field in QUEUE_ENVIRONMENT.values()}
        return dataclasses.replace(self.definition, **values)

    @property
    def effective_queues(self) -> tuple[Queue, ...]:
        """Every queue, this process's with the settings it runs with."""
        own = self.own_queue
        return tuple(own if queue.name == own.name else queue for queue in self.queues)

    @property
    def delivery_limit(self) -> int:
        return self.definition.delivery_limit

    def broker_queue(self, name: str | None = None) -> str:
        """The broker's name of queue ``name`` (this process's queue by default)."""
        return broker_name(self.namespace, name or self.queue)

    @property
    def shutdown_window(self) -> float:
        """Longest wait for running tasks that still leaves the reserve before SIGKILL."""
        return rules.shutdown_window(self.stop_timeout)

    @property
    def soft_shutdown_timeout(self) -> float:
        """Seconds running tasks get after SIGTERM before they are cancelled: by default the
        whole shutdown window."""
        given = self.soft_shutdown_setting
        return self.shutdown_window if given is None else given

    @property
    def lock_ttl(self) -> float:
        """Seconds a dead worker's lock lives on: by default a third of the hard limit, 2-30 s."""
        given = self.lock_ttl_setting
        return max(2.0, min(30.0, self.time_limit / 3)) if given is None else given

    @property
    def lock_wait_limit(self) -> float:
        """Longest a task waits for a lock before the wait counts as a failure.

        A live holder ends within the longest hard limit of any queue; a dead holder's lock
        expires within ``lock_ttl``.
        """
        longest = max(queue.time_limit for queue in self.effective_queues)
        return longest + 2 * self.lock_ttl

    @property
    def protection_minutes(self) -> int:
        """Protection's expiry: a hard limit and a refresh, plus slack, in whole minutes."""
        given = self.protection_minutes_setting
        if given is not None:
            return given
        covered = math.ceil((self.time_limit + self.protection_refresh) / 60)
        return covered + PROTECTION_SLACK_MINUTES

    @property
    def min_visibility_timeout(self) -> float:
        """A message may be held while the tasks reserved before it run, for its own run, and
        for the longest retry countdown: on any queue, since every worker restores them all."""
        held = max(queue.prefetch_multiplier * queue.time_limit for queue in self.effective_queues)
        return held + self.retry_backoff_max + VISIBILITY_MARGIN


#: The rule a value that does not parse breaks, by pydantic's error type.
PARSE_RULES = {
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
}


def from_env(
    env: Mapping[str, str], queue: str | None = None, queues: Sequence[Queue] | None = None
) -> Config:
    """Build the configuration from ``env``; raise ConfigError listing every broken rule.

    ``queue``: a worker's queue, whose settings ``env`` may override; None for any other
    process (the default queue, as defined). ``queues``: the definitions (``queues.py``).
    A value that does not parse is a problem and its default stands in, so the rules still run
    and every problem is reported at once.
    """
    definitions = tuple(service_queues.QUEUES if queues is None else queues)
    problems = definition_problems(definitions)
    if problems:
        raise ConfigError(problems)
    own = next((item for item in definitions if item.name == (queue or definitions[0].name)), None)
    if own is None:
        raise ConfigError([f"queue {queue!r}: {undefined_queue_rule(definitions)}"])
    given = {
        name: value
        for name, value in env.items()
        if value != "" and (queue is not None or name not in WORKER_ENVIRONMENT)
    }
    defined = {name: getattr(own, field) for name, field in QUEUE_ENVIRONMENT.items()}
    data = {**defined, **given, "queue": own.name, "queues": definitions, "worker": bool(queue)}
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        unparsed = {str(item["loc"][0]): item for item in error.errors()}
        problems = [
            f"{name}={item['input']!r}: {PARSE_RULES.get(item['type'], item['msg'])}"
            for name, item in unparsed.items()
        ]
        # The queue's definition stands in for an override that does not parse.
        standing_in = {name: value for name, value in data.items() if name not in unparsed}
        config = Config.model_validate({**defined, **standing_in})
        given = {name: value for name, value in given.items() if name not in unparsed}
    problems += check(config, overridden={name for name in QUEUE_ENVIRONMENT if name in given})
    if problems:
        raise ConfigError(problems)
    return config


def queue_of(delivery_info: Mapping[str, Any] | None) -> str:
    """The broker queue a message came from: its routing key (each queue's own broker name),
    else this process's queue."""
    routing_key = (delivery_info or {}).get("routing_key")
    return str(routing_key) if routing_key else current().broker_queue()


def undefined_queue_rule(definitions: Sequence[Queue]) -> str:
    names = ", ".join(queue.name for queue in definitions)
    return f"must be a queue that queues.py defines ({names})"


def check(config: Config, overridden: set[str] | None = None) -> list[str]:
    """Return one line per broken rule, each naming the setting, its value and the rule.

    ``overridden``: the queue variables the worker's environment set (named in their place).
    """
    problems = queue_problems(config, overridden or set())
    if urlsplit(config.redis_url).scheme not in REDIS_SCHEMES:
        problems.append(
            f"REDIS_URL={shown_url(config.redis_url)!r}: must be a redis://, rediss:// or unix:// "
            "URL (locks and completion markers live in Redis)"
        )
    if not BROKER_NAMESPACE.fullmatch(config.namespace):
        problems.append(
            f"BROKER_NAMESPACE={config.namespace!r}: must be 1-64 letters, digits, '-' and '_', "
            "starting with a letter (it starts the name of every queue and exchange)"
        )
    longest_wait = MAX_HEALTH_CHECK_START_PERIOD - STARTUP_MARGIN
    if not 0 <= config.startup_dependency_timeout <= longest_wait:
        problems.append(
            f"STARTUP_DEPENDENCY_TIMEOUT={config.startup_dependency_timeout:g}: must be 0-"
            f"{longest_wait} s, so the wait for Redis and the database fits the health check's "
            f"start period (at most {MAX_HEALTH_CHECK_START_PERIOD} s on ECS) with "
            f"{STARTUP_MARGIN} s left to reach the broker"
        )
    if config.completion_marker_ttl < config.min_visibility_timeout:
        problems.append(
            f"COMPLETION_MARKER_TTL={config.completion_marker_ttl:g}: must be at least "
            f"{config.min_visibility_timeout:g} s (the longest a message may be held: prefetch "
            "multiplier x hard time limit of any queue + TASK_RETRY_BACKOFF_MAX + 60), or a late "
            "redelivery of a completed task runs it again"
        )
    problems += count_problems(config)
    problems += fleet_problems(config)
    problems += database_problems(config.database_url)
    problems += broker.check(config)
    return problems + (worker_problems(config) if config.worker else [])


def worker_problems(config: Config) -> list[str]:
    """Rules of what a worker does with its own queue's settings: stop, lock, protect."""
    problems = []
    if not 0 <= config.soft_shutdown_timeout <= config.shutdown_window:
        problems.append(
            f"WORKER_SOFT_SHUTDOWN_TIMEOUT={config.soft_shutdown_timeout:g}: must be 0-"
            f"{config.shutdown_window:g} s so cancel, requeue and disconnect finish before ECS "
            f"sends SIGKILL at a stop timeout of {config.stop_timeout:g} s (queue {config.queue})"
        )
    if not 1 <= config.lock_ttl <= config.time_limit:
        problems.append(
            f"LOCK_TTL={config.lock_ttl:g}: must be 1 s to the hard time limit "
            f"({config.time_limit:g} s, queue {config.queue}), so a dead worker's lock frees "
            "before a redelivery gives up waiting for it"
        )
    low, high = PROTECTION_MINUTES_RANGE
    minutes = config.protection_minutes
    needed = config.time_limit + config.protection_refresh
    if not (low <= minutes <= high and minutes * 60 >= needed):
        problems.append(
            f"SCALE_IN_PROTECTION_MINUTES={minutes}: must be {low}-{high} (what ECS accepts) and "
            f"cover the hard time limit ({config.time_limit:g} s, queue {config.queue}) + "
            f"SCALE_IN_PROTECTION_REFRESH={config.protection_refresh:g} s, so a task that starts "
            "just before a refresh that fails is still protected when it reaches its hard limit"
        )
    return problems + broker.worker_problems(config)


def queue_problems(config: Config, overridden: set[str]) -> list[str]:
    """The rules of every queue; this process's as it runs (a worker's environment named)."""
    variables = {field: name for name, field in QUEUE_ENVIRONMENT.items() if name in overridden}
    problems = []
    for queue in config.effective_queues:

        def named(field: str, queue: Queue = queue) -> str:
            if queue.name == config.queue and field in variables:
                return f"{variables[field]}={shown(getattr(queue, field))} (queue {queue.name})"
            return defined_as(queue)(field)

        problems += rules.queue_problems(queue, named)
    return problems


def count_problems(config: Config) -> list[str]:
    """Rules for the settings that count something: retries and rows."""
    problems = []
    if config.max_retries < 0:
        problems.append(f"TASK_MAX_RETRIES={config.max_retries}: must be 0 or more")
    if config.retry_backoff_max < 1:
        problems.append(f"TASK_RETRY_BACKOFF_MAX={config.retry_backoff_max}: must be at least 1")
    if not 1 <= config.retry_first_countdown <= config.retry_backoff_max:
        problems.append(
            f"TASK_RETRY_FIRST_COUNTDOWN={config.retry_first_countdown:g}: must be 1 s to "
            f"TASK_RETRY_BACKOFF_MAX={config.retry_backoff_max}"
        )
    if config.batch_size < 1:
        problems.append(f"BATCH_SIZE={config.batch_size}: must be at least 1")
    return problems


def fleet_problems(config: Config) -> list[str]:
    """Rules of scale-in protection and metrics."""
    problems = []
    if config.protection_refresh < 1:
        problems.append(
            f"SCALE_IN_PROTECTION_REFRESH={config.protection_refresh:g}: must be at least 1 s"
        )
    if not 1 <= len(config.metrics_namespace) <= 255 or config.metrics_namespace.startswith(":"):
        problems.append(
            f"METRICS_NAMESPACE={config.metrics_namespace!r}: must be 1-255 characters, not "
            "starting with ':' (CloudWatch's rule for a namespace)"
        )
    if config.queue_depth_interval < 1:
        problems.append(
            f"QUEUE_DEPTH_INTERVAL={config.queue_depth_interval:g}: must be at least 1 s"
        )
    return problems


def database_url(raw: str) -> URL:
    """``raw`` as a SQLAlchemy URL naming the installed driver; ValueError if there is none."""
    url = make_url(raw)
    backend = url.get_backend_name()
    driver = DATABASE_DRIVERS.get(backend)
    if driver is None or url.drivername not in (backend, driver):
        raise ValueError(f"no installed driver for {url.drivername!r}")
    return url.set(drivername=driver)


def database_problems(raw: str) -> list[str]:
    """DATABASE_URL must be a URL of a database whose driver the service installs."""
    try:
        database_url(raw)
    except (ArgumentError, ValueError) as error:
        return [
            f"DATABASE_URL={shown_url(raw)!r}: must be a sqlite:// or postgresql:// "
            f"(postgresql+psycopg://) URL, the drivers this service installs ({error})"
        ]
    return []


#: The worker's configuration, once ``use_worker_queue`` chose its queue.
_worker: Config | None = None


@cache
def from_environ() -> Config:
    return from_env(os.environ)


def current() -> Config:
    """The process's configuration, read once from ``os.environ`` (a worker's: its queue's)."""
    return _worker or from_environ()


def use_worker_queue(queue: str) -> Config:
    """Make ``queue``'s settings, with the environment's overrides, this process's.

    Raises ConfigError when they break a rule.
    """
    global _worker  # noqa: PLW0603 - set once, when the worker starts
    _worker = from_env(os.environ, queue)
    return _worker
