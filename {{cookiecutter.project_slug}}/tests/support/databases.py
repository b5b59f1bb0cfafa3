"""Fresh databases for the tests: a SQLite file, or a PostgreSQL database made for one test."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

#: A PostgreSQL database the tests may connect to, to create and drop databases of their own.
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
KINDS = ("sqlite", "postgresql")


@contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    """The URL of an empty database of ``kind``, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'test.sqlite3'}"
        return
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
