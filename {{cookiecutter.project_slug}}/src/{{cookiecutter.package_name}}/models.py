"""The database models (SQLAlchemy 2.0, typed); ``migrations/`` holds their Alembic migrations.

After changing a model: ``uv run alembic revision --autogenerate -m "what changed"``, read the
generated file, then ``uv run alembic upgrade head``. ``tests/core/test_migrations.py`` fails
while the models and the migrations disagree.
"""

from sqlalchemy import MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Named constraints, so migrations can refer to them on every database (SQLite included).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
