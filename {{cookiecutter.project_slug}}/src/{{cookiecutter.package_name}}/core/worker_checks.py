"""What a worker process does when it starts: its queue, its checks, its ready marker.

Each worker consumes exactly one queue of ``queues.py`` (``--queues``) and runs with that queue's
settings. It refuses to start, naming the setting, its value and the rule, when the worker would
not shut down inside the ECS stop window or its Redis or database stays unreachable; it marks
itself ready for the health check once it has reached its broker.
"""

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis
from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from . import config, logs, refusal
from .celery_settings import celery_settings
from .dead_letters import store as dead_letters
from .refusal import shown_url

log = logs.get(__name__)

#: Exit status of a worker refused for its configuration (EX_CONFIG).
EXIT_STATUS = refusal.EXIT_STATUS
#: The ``celery`` command copies these variables over the service's settings before the app is
#: imported (celery/bin/celery.py: ``--broker`` reads BROKER_URL, ``--result-backend``
#: RESULT_BACKEND), so a stray one silently wins.
COMMAND_OVERRIDES = {"BROKER_URL": "CELERY_BROKER_URL", "RESULT_BACKEND": "CELERY_RESULT_BACKEND"}
#: Longest single connection attempt, and longest pause between attempts, while waiting.
ATTEMPT_TIMEOUT = 5.0
FIRST_PAUSE = 0.5
#: The health check (deploy/ecs/healthcheck.py) looks for this file, named by the worker's pid.
READY_MARKER = "celery-worker-{pid}.ready"


def chosen_queue(options: Mapping[str, Any], known: list[str]) -> str:
    """The queue named by ``--queues``, or the only queue; refuse anything else."""
    names = list(options.get("queues") or [])
    if not names and len(known) == 1:
        return known[0]
    if len(names) == 1 and names[0] in known:
        return str(names[0])
    shown = ",".join(names) if names else "(not given)"
    refusal.refuse(
        [
            f"--queues={shown}: must name one queue that queues.py defines "
            f"({', '.join(known)}); each worker consumes exactly one"
        ]
    )


def use_queue(conf: Any, options: Mapping[str, Any], **_: Any) -> None:
    """``celeryd_init`` receiver: the worker's queue settings, checked, become Celery's."""
    queue = chosen_queue(options, [item.name for item in config.current().queues])
    try:
        settings = celery_settings(config.use_worker_queue(queue))
    except config.ConfigError as error:
        refusal.refuse(error.problems)
    conf.update(settings)


def size_pool(sender: Any, **_: Any) -> None:
    """``worker_init`` receiver: the pool's size and prefetch are the queue's too.

    The celery command reads both from the settings before the queue is chosen (its
    ``--concurrency`` and ``--prefetch-multiplier`` defaults); the worker builds its pool and
    consumer from these attributes after this signal.
    """
    settings = config.current()
    sender.concurrency = settings.concurrency
    sender.prefetch_multiplier = settings.prefetch_multiplier


def problems(pool: Any, env: Mapping[str, str]) -> list[str]:
    """Rules for the pool and the shutdown signal handling of a worker."""
    found = []
    remap = env.get("REMAP_SIGTERM", "")
    if remap == "SIGQUIT":
        found.append(
            f"REMAP_SIGTERM={remap!r}: must be unset, so the SIGTERM sent by ECS starts the warm "
            "shutdown that ends with the running tasks, instead of a cold one that waits out "
            "WORKER_SOFT_SHUTDOWN_TIMEOUT"
        )
    pool_cls = get_implementation(pool) if isinstance(pool, str) else pool
    if not (isinstance(pool_cls, type) and issubclass(pool_cls, PreforkPool)):
        name = getattr(pool_cls, "__module__", str(pool))
        found.append(
            f"worker pool={name}: must be prefork, the only pool whose cold shutdown cancels "
            "running tasks and hands their messages back"
        )
    return found


def initial_environment() -> Mapping[str, str]:
    """The environment the process was started with, before the celery command changed it.

    Linux keeps it in /proc/self/environ (``os.environ`` and ``posix.environ`` show the changes);
    elsewhere the current one stands in, and the override check finds nothing.
    """
    try:
        block = Path("/proc/self/environ").read_bytes()
    except OSError:
        return os.environ
    pairs = (entry.partition(b"=") for entry in block.split(b"\0") if entry)
    return {os.fsdecode(name): os.fsdecode(value) for name, _, value in pairs}


def override_problems(env: Mapping[str, str], initial: Mapping[str, str]) -> list[str]:
    """BROKER_URL and RESULT_BACKEND must not replace the service's own settings unnoticed."""
    found = []
    for stray, setting in COMMAND_OVERRIDES.items():
        value = env.get(stray)
        if value and value != initial.get(setting, ""):
            found.append(
                f"{stray}={shown_url(value)!r}: must be unset (or equal {setting}="
                f"{shown_url(initial.get(setting, ''))!r}), because the celery command lets it "
                f"replace {setting}"
            )
    return found


def unset_note(env: Mapping[str, str], name: str) -> str:
    return "" if env.get(name) else f" ({name} is not set; this is the default)"


def wait_until_reachable(
    name: str, shown: str, what: str, attempt: Callable[[float], None], timeout: float
) -> str | None:
    """Call ``attempt(seconds)`` until it returns or ``timeout`` passes; None, or the last error.

    Like Celery's broker connection retry on startup, bounded by STARTUP_DEPENDENCY_TIMEOUT, so
    a worker started during a Redis or database failover waits it out instead of exiting.
    """
    deadline = time.monotonic() + timeout
    pause = FIRST_PAUSE
    while True:
        left = deadline - time.monotonic()
        try:
            attempt(max(1.0, min(ATTEMPT_TIMEOUT, left)))
        except (redis.RedisError, SQLAlchemyError, OSError) as error:
            reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        else:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            return reason
        log.warning(
            "worker.waiting",
            setting=name,
            url=shown,
            error=f"cannot reach {what} ({reason})",
            next_try_in=round(min(pause, left), 1),
            refusing_in=round(left),
        )
        time.sleep(min(pause, left))
        pause = min(2 * pause, ATTEMPT_TIMEOUT)


def ping_redis(url: str) -> Callable[[float], None]:
    def attempt(seconds: float) -> None:
        with redis.Redis.from_url(
            url, socket_connect_timeout=seconds, socket_timeout=seconds
        ) as client:
            client.ping()

    return attempt


def query_database(url: str) -> Callable[[float], None]:
    """One ``SELECT 1`` on a connection of its own, closed at once.

    The worker's main process keeps no connection that its pool processes would inherit.
    """

    def attempt(seconds: float) -> None:
        database_url = config.database_url(url)
        if database_url.get_backend_name() == "postgresql":
            database_url = database_url.update_query_dict({"connect_timeout": str(int(seconds))})
        engine = create_engine(database_url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()

    return attempt


def dependency_problems(env: Mapping[str, str], timeout: float) -> list[str]:
    """Redis (locks, markers) and the database must answer within ``timeout`` seconds."""
    settings = config.current()
    deadline = time.monotonic() + timeout
    found = []
    waits = [
        ("REDIS_URL", settings.redis_url, "Redis", ping_redis),
        ("DATABASE_URL", settings.database_url, "the database", query_database),
    ]
    for name, url, what, attempt in waits:
        shown = shown_url(url)
        left = max(0.0, deadline - time.monotonic())
        error = wait_until_reachable(name, shown, what, attempt(url), left)
        if error is not None:
            waited = (
                f"within STARTUP_DEPENDENCY_TIMEOUT={timeout:g} s"
                if timeout == settings.startup_dependency_timeout
                else "(tried once: the worker is refused anyway)"
            )
            found.append(
                f"{name}={shown!r}{unset_note(env, name)}: cannot reach {what} {waited}: {error}"
            )
    return found


def refuse_unsafe_worker(sender: Any, **_: Any) -> None:
    """``worker_init`` receiver: exit with EX_CONFIG when the worker breaks a rule."""
    # Celery sets up logging after worker_init; the lines of the wait below need it now.
    logs.configure()
    found = problems(sender.pool_cls, os.environ)
    found += override_problems(os.environ, initial_environment())
    # With a rule already broken, one try each: waiting minutes to refuse anyway helps nobody.
    timeout = 0.0 if found else config.current().startup_dependency_timeout
    found += dependency_problems(os.environ, timeout)
    found += dead_letters.queue_problems(sender.app)
    if found:
        refusal.refuse(found)


def ready_marker(pid: int | None = None) -> Path:
    return Path(tempfile.gettempdir()) / READY_MARKER.format(pid=pid or os.getpid())


def mark_ready(**_: Any) -> None:
    """``worker_ready`` receiver: the consumer has reached the broker; tell the health check."""
    ready_marker().touch()


def unmark_ready(**_: Any) -> None:
    """``worker_shutdown`` receiver: a later process with this pid must not look ready."""
    with contextlib.suppress(FileNotFoundError):
        ready_marker().unlink()
