"""Alembic environment: async (asyncpg through SQLAlchemy), one transaction per run.

The database URL is, in order: the `database_url` attribute set by `app.db.migrate`, the
`-x database_url=...` command-line argument, `sqlalchemy.url` in the ini file, or the settings
(DATABASE_URL). A plain libpq URL is fine: it is converted for asyncpg here.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.db import models  # noqa: F401  (registers the tables on the metadata)
from app.db.base import Base
from app.db.session import asyncpg_url

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)


def _database_url() -> str:
    url = (
        config.attributes.get("database_url")
        or context.get_x_argument(as_dictionary=True).get("database_url")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        from app.settings import get_settings

        url = get_settings().database_url
    if not url:
        raise RuntimeError("no database to migrate: set DATABASE_URL")
    return str(url)


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        # procrastinate's tables are installed by a revision, not described by our models.
        include_name=lambda name, type_, _parent: (
            not (type_ == "table" and str(name).startswith("procrastinate_"))
        ),
        **kwargs,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    _configure(
        url=asyncpg_url(_database_url()).render_as_string(hide_password=False),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(asyncpg_url(_database_url()), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
