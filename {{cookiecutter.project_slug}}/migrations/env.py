"""Alembic's environment: the database of DATABASE_URL, the models' metadata for autogenerate."""

import os
from logging.config import fileConfig

from alembic import context

from {{ cookiecutter.package_name }}.core import config, db, refusal
from {{ cookiecutter.package_name }}.models import Base

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
# SQLite cannot alter most column properties in place: batch mode copies the table instead.
options = {"target_metadata": target_metadata, "render_as_batch": True, "compare_type": True}


# Read now, not cached: the configuration is checked as a whole, as a worker would check it.
try:
    database_url = config.from_env(os.environ).database_url
except config.ConfigError as error:
    refusal.refuse(error.problems)


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: print the SQL instead of running it."""
    url = config.database_url(database_url)
    context.configure(url=url, literal_binds=True, **options)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = db.create(database_url)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **options)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
