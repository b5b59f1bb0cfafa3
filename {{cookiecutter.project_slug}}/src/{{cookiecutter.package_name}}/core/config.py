"""Service configuration: read from the environment, defaults from the project's answers.

Every value a deployment may change is read here, once, and checked as a whole: a worker with an
inconsistent configuration refuses to start and names the setting, its value and the rule it breaks.
"""

import os
from collections.abc import Mapping
from functools import cache
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, ValidationError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from . import broker, defaults, rules
from .refusal import shown_url

#: Seconds of the Redis visibility timeout beyond the longest time a message may be held.
VISIBILITY_MARGIN = 60
#: A message may be delivered once more after its worker was lost before it is dead-lettered.
MIN_DELIVERY_LIMIT = 2
REDIS_SCHEMES = ("redis", "rediss", "unix")
#: Database drivers the service installs, by backend (a ``postgresql://`` URL gets psycopg 3).
DATABASE_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg"}
#: ECS accepts a health check startPeriod of at most 300 s.
MAX_HEALTH_CHECK_START_PERIOD = 300
#: Seconds of the health check's start period left after the wait for Redis and the database:
#: enough to connect to the broker and start the pool (a few seconds here).
STARTUP_MARGIN = 30


class ConfigError(RuntimeError):
    """The service's configuration breaks a rule; the message lists every broken rule."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"refusing to start, the configuration is inconsistent:\n{lines}")


class Config(broker.BrokerSettings):
    """Every setting of the service; each field's alias is its environment variable."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    broker_url: str = Field(broker.DEFAULT_URL, alias="CELERY_BROKER_URL")
    #: Queue the tasks are published to and the worker consumes.
    default_queue: str = Field(defaults.TASK_DEFAULT_QUEUE, alias="TASK_DEFAULT_QUEUE")
    #: Empty: results are not stored.
    result_backend: str = Field("", alias="CELERY_RESULT_BACKEND")
    redis_url: str = Field(defaults.REDIS_URL, alias="REDIS_URL")
    database_url: str = Field(defaults.DATABASE_URL, alias="DATABASE_URL")
    #: Seconds ECS waits between SIGTERM and SIGKILL; must equal the task definition's stopTimeout.
    stop_timeout: float = Field(defaults.ECS_STOP_TIMEOUT, alias="ECS_STOP_TIMEOUT")
    #: Unset: the whole shutdown window (``soft_shutdown_timeout``).
    soft_shutdown_setting: float | None = Field(None, alias="WORKER_SOFT_SHUTDOWN_TIMEOUT")
    soft_time_limit: float = Field(defaults.TASK_SOFT_TIME_LIMIT, alias="TASK_SOFT_TIME_LIMIT")
    time_limit: float = Field(defaults.TASK_TIME_LIMIT, alias="TASK_TIME_LIMIT")
    concurrency: int = Field(defaults.WORKER_CONCURRENCY, alias="WORKER_CONCURRENCY")
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
    #: Deliveries of one message that may end without the task finishing (the worker died, was
    #: killed or stopped); the next one goes to the dead-letter store instead of a worker.
    delivery_limit: int = Field(defaults.TASK_DELIVERY_LIMIT, alias="TASK_DELIVERY_LIMIT")
    #: Seconds a starting worker waits for Redis and the database before it refuses to start.
    startup_dependency_timeout: float = Field(
        defaults.STARTUP_DEPENDENCY_TIMEOUT, alias="STARTUP_DEPENDENCY_TIMEOUT"
    )

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

        A live holder ends within ``time_limit``; a dead holder's lock expires within ``lock_ttl``.
        """
        return self.time_limit + 2 * self.lock_ttl

    @property
    def min_visibility_timeout(self) -> float:
        """A message may be held for a whole run plus the longest retry countdown."""
        return self.time_limit + self.retry_backoff_max + VISIBILITY_MARGIN


#: The rule a value that does not parse breaks, by pydantic's error type.
PARSE_RULES = {
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
}


def from_env(env: Mapping[str, str]) -> Config:
    """Build the configuration from ``env``; raise ConfigError listing every broken rule.

    A value that does not parse is a problem and its default stands in, so the rules still run
    and every problem is reported at once.
    """
    given = {name: value for name, value in env.items() if value != ""}
    problems: list[str] = []
    try:
        config = Config.model_validate(given)
    except ValidationError as error:
        unparsed = {str(item["loc"][0]): item for item in error.errors()}
        problems = [
            f"{name}={item['input']!r}: {PARSE_RULES.get(item['type'], item['msg'])}"
            for name, item in unparsed.items()
        ]
        config = Config.model_validate({k: v for k, v in given.items() if k not in unparsed})
    problems += check(config)
    if problems:
        raise ConfigError(problems)
    return config


def check(config: Config) -> list[str]:
    """Return one line per broken rule, each naming the setting, its value and the rule."""
    problems = []
    stop = f"ECS_STOP_TIMEOUT={config.stop_timeout:g}"
    for shown, rule in (
        (stop, rules.stop_timeout_rule(config.stop_timeout)),
        (
            f"TASK_SOFT_TIME_LIMIT={config.soft_time_limit:g}",
            rules.soft_time_limit_rule(
                config.soft_time_limit, config.time_limit, f"TASK_TIME_LIMIT={config.time_limit:g}"
            ),
        ),
        (
            f"TASK_TIME_LIMIT={config.time_limit:g}",
            rules.time_limit_rule(config.time_limit, config.stop_timeout, stop),
        ),
    ):
        if rule:
            problems.append(f"{shown}: {rule}")
    if not 0 <= config.soft_shutdown_timeout <= config.shutdown_window:
        problems.append(
            f"WORKER_SOFT_SHUTDOWN_TIMEOUT={config.soft_shutdown_timeout:g}: must be 0-"
            f"{config.shutdown_window:g} s so cancel, requeue and disconnect finish before ECS "
            f"sends SIGKILL at ECS_STOP_TIMEOUT={config.stop_timeout:g}"
        )
    if urlsplit(config.redis_url).scheme not in REDIS_SCHEMES:
        problems.append(
            f"REDIS_URL={shown_url(config.redis_url)!r}: must be a redis://, rediss:// or unix:// "
            "URL (locks and completion markers live in Redis)"
        )
    longest_wait = MAX_HEALTH_CHECK_START_PERIOD - STARTUP_MARGIN
    if not 0 <= config.startup_dependency_timeout <= longest_wait:
        problems.append(
            f"STARTUP_DEPENDENCY_TIMEOUT={config.startup_dependency_timeout:g}: must be 0-"
            f"{longest_wait} s, so the wait for Redis and the database fits the health check's "
            f"start period (at most {MAX_HEALTH_CHECK_START_PERIOD} s on ECS) with "
            f"{STARTUP_MARGIN} s left to reach the broker"
        )
    if not 1 <= config.lock_ttl <= config.time_limit:
        problems.append(
            f"LOCK_TTL={config.lock_ttl:g}: must be 1 s to TASK_TIME_LIMIT={config.time_limit:g}, "
            "so a dead worker's lock frees before a redelivery gives up waiting for it"
        )
    if config.completion_marker_ttl < config.min_visibility_timeout:
        problems.append(
            f"COMPLETION_MARKER_TTL={config.completion_marker_ttl:g}: must be at least "
            f"{config.min_visibility_timeout:g} s (TASK_TIME_LIMIT + TASK_RETRY_BACKOFF_MAX + 60), "
            "or a late redelivery of a completed task runs it again"
        )
    problems += count_problems(config)
    problems += database_problems(config.database_url)
    problems += broker.check(config)
    return problems


def count_problems(config: Config) -> list[str]:
    """Rules for the settings that count something: processes, retries, rows, deliveries."""
    problems = []
    if config.concurrency < 1:
        problems.append(f"WORKER_CONCURRENCY={config.concurrency}: must be at least 1")
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
    if config.delivery_limit < MIN_DELIVERY_LIMIT:
        problems.append(
            f"TASK_DELIVERY_LIMIT={config.delivery_limit}: must be at least {MIN_DELIVERY_LIMIT}, "
            "so a task whose worker was lost once is delivered again instead of dead-lettered"
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


@cache
def current() -> Config:
    """The process's configuration, read once from ``os.environ``."""
    return from_env(os.environ)
