"""Users for the newsletter example's tests (delete it with them)."""

from sqlalchemy import insert
from sqlalchemy.orm import Session

from {{ cookiecutter.package_name }}.core import db
from {{ cookiecutter.package_name }}.models import Base, User


def seed_users(url: str, count: int) -> None:
    """Create the tables and ``count`` users with ids 1..count."""
    engine = db.create(url)
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as session, session.begin():
            rows = [{"id": i, "email": f"user{i}@example.com"} for i in range(1, count + 1)]
            session.execute(insert(User), rows)
    finally:
        engine.dispose()
