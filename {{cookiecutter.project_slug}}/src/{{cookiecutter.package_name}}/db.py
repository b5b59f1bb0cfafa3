"""The database: one engine per process, made after the fork, and one session per task.

A connection pool must not cross a fork: a pool process that used its parent's sockets would
interleave its queries with the parent's. ``sessions()`` makes the engine on first use in each
process; before a fork the parent's pool is closed, and a child drops the engine it inherited
without touching the parent's connections (SQLAlchemy's ``dispose(close=False)``).

Usage, one session and one transaction per task::

    with db.session() as session:
        user = session.get(User, user_id)
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from . import config

_engine: Engine | None = None
_sessions: sessionmaker[Session] | None = None
_pid: int | None = None


#: Seconds to wait for a PostgreSQL connection: a failed-over database fails fast, and the task
#: retries (``retries.TRANSIENT_ERRORS``) instead of hanging to its time limit.
CONNECT_TIMEOUT = 5


def create(raw_url: str) -> Engine:
    """A new engine for ``raw_url``; ``pool_pre_ping`` replaces connections the server dropped."""
    url = config.database_url(raw_url)
    timeout = {"connect_timeout": CONNECT_TIMEOUT} if url.get_backend_name() == "postgresql" else {}
    return create_engine(url, pool_pre_ping=True, connect_args=timeout)


def sessions() -> sessionmaker[Session]:
    """This process's session factory, bound to its engine for ``DATABASE_URL``."""
    global _engine, _sessions, _pid  # noqa: PLW0603
    if _sessions is None or _pid != os.getpid():
        _engine = create(config.current().database_url)
        _sessions = sessionmaker(_engine, expire_on_commit=False)
        _pid = os.getpid()
    return _sessions


@contextmanager
def session() -> Iterator[Session]:
    """A session and its transaction for one task: committed at the end, rolled back on error."""
    with sessions().begin() as current:
        yield current


def _close_before_fork() -> None:
    if _engine is not None and _pid == os.getpid():
        _engine.dispose()


def _forget_after_fork() -> None:
    global _engine, _sessions  # noqa: PLW0603
    if _engine is not None:
        _engine.dispose(close=False)
    _engine = _sessions = None


os.register_at_fork(before=_close_before_fork, after_in_child=_forget_after_fork)
