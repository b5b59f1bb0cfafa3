"""The database: one engine per process (``per_process.py``), one session per task.

Usage, one session and one transaction per task::

    with db.session() as session:
        user = session.get(User, user_id)
"""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from . import config
from .per_process import PerProcess

#: Seconds to wait for a PostgreSQL connection: a failed-over database fails fast, and the task
#: retries (``retries.TRANSIENT_ERRORS``) instead of hanging to its time limit.
CONNECT_TIMEOUT = 5


def create(raw_url: str) -> Engine:
    """A new engine for ``raw_url``; ``pool_pre_ping`` replaces connections the server dropped."""
    url = config.database_url(raw_url)
    timeout = {"connect_timeout": CONNECT_TIMEOUT} if url.get_backend_name() == "postgresql" else {}
    return create_engine(url, pool_pre_ping=True, connect_args=timeout)


def _sessions() -> sessionmaker[Session]:
    return sessionmaker(create(config.current().database_url), expire_on_commit=False)


def _forget(factory: sessionmaker[Session]) -> None:
    """In a forked child: drop the parent's pool without closing its connections."""
    engine = factory.kw["bind"]
    engine.dispose(close=False)


_factory = PerProcess(_sessions, _forget)


def sessions() -> sessionmaker[Session]:
    """This process's session factory, bound to its engine for ``DATABASE_URL``."""
    return _factory.get()


@contextmanager
def session() -> Iterator[Session]:
    """A session and its transaction for one task: committed at the end, rolled back on error."""
    with sessions().begin() as current:
        yield current
