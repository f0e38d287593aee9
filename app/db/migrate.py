"""`upgrade(database_url)`: Alembic `upgrade head`, which also installs procrastinate's schema.

Works from any directory and from an installed wheel: the scripts are the `migrations`
package, found through importlib, and no ini file is needed. Alembic runs in a thread of its
own, so its `asyncio.run` never meets the caller's event loop.
"""

from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from app.db.session import libpq_url


def script_location() -> Path:
    return Path(str(resources.files("migrations")))


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, *, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest). Idempotent."""
    _in_thread(lambda: command.upgrade(alembic_config(database_url), revision))


def downgrade(database_url: str, *, revision: str) -> None:
    _in_thread(lambda: command.downgrade(alembic_config(database_url), revision))


def head() -> str:
    """The newest revision of the scripts."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None
    return head


def current(database_url: str) -> str | None:
    """The revision the database is at (None when never migrated)."""
    url = libpq_url(database_url).replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _in_thread(run: object) -> None:
    assert callable(run)
    failure: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="alembic")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
