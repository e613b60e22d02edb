"""Alembic environment, used through ``eventsource.migrate`` (not alembic.ini).

The version table is ``eventsource_alembic_version`` so a host service that runs
its own Alembic history in the same database is never disturbed.
"""

from __future__ import annotations

from alembic import context

VERSION_TABLE = "eventsource_alembic_version"

config = context.config


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        version_table=VERSION_TABLE,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        version_table=VERSION_TABLE,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
