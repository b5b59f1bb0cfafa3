"""Checks that only apply to a worker process, run when the worker starts.

Refuses to start, naming the setting, its value and the rule, when the worker would not shut
down inside the ECS stop window.
"""

import os
import sys
from collections.abc import Mapping
from typing import Any

import redis
from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from . import config, db
from .dead_letters import store as dead_letters

#: Exit status of a worker refused for its configuration (EX_CONFIG).
EXIT_STATUS = 78


def problems(pool: Any, env: Mapping[str, str]) -> list[str]:
    """Rules for the pool and the shutdown signal handling of a worker."""
    found = []
    remap = env.get("REMAP_SIGTERM", "")
    if remap != "SIGQUIT":
        found.append(
            f"REMAP_SIGTERM={remap!r}: must be 'SIGQUIT', so the SIGTERM sent by ECS starts the "
            "bounded soft shutdown instead of a warm shutdown that ECS ends with SIGKILL"
        )
    pool_cls = get_implementation(pool) if isinstance(pool, str) else pool
    if not (isinstance(pool_cls, type) and issubclass(pool_cls, PreforkPool)):
        name = getattr(pool_cls, "__module__", str(pool))
        found.append(
            f"worker pool={name}: must be prefork, the only pool whose soft shutdown cancels "
            "running tasks and hands their messages back (REMAP_SIGTERM requires it)"
        )
    return found


def redis_problems(env: Mapping[str, str]) -> list[str]:
    """Locks and completion markers need Redis: it must answer before the worker takes tasks."""
    url = config.current().redis_url
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5) as client:
            client.ping()
    except (redis.RedisError, OSError) as error:
        unset = "" if env.get("REDIS_URL") else " (REDIS_URL is not set; this is the default)"
        return [f"REDIS_URL={url!r}{unset}: cannot reach Redis: {error}"]
    return []


def database_problems(env: Mapping[str, str]) -> list[str]:
    """The tasks read the database: it must answer before the worker takes tasks.

    The check uses an engine of its own and closes it, so the worker's main process holds no
    connection that its pool processes would inherit.
    """
    url = config.current().database_url
    engine = db.create(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        unset = "" if env.get("DATABASE_URL") else " (DATABASE_URL is not set; this is the default)"
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        shown = config.shown_url(url)
        return [f"DATABASE_URL={shown!r}{unset}: cannot reach the database: {reason}"]
    finally:
        engine.dispose()
    return []


def refuse_unsafe_worker(sender: Any, **_: Any) -> None:
    """``worker_init`` receiver: exit with EX_CONFIG when the worker breaks a rule."""
    found = problems(sender.pool_cls, os.environ) + redis_problems(os.environ)
    found += database_problems(os.environ) + dead_letters.queue_problems(sender.app)
    if found:
        lines = "\n".join(f"  - {problem}" for problem in found)
        print(f"refusing to start the worker:\n{lines}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_STATUS)
