"""procrastinate's schema, as shipped inside the installed package (pinned to 3.10)

Revision ID: 564fc9fa4496
Revises:
Create Date: 2026-11-23 09:35:00

procrastinate owns its tables, types and functions; we never copy its SQL. This revision reads
`procrastinate/sql/schema.sql` from the installed package (importlib.resources) when it runs,
and refuses to run against a procrastinate whose schema is not the one pinned here (the newest
file in its `sql/migrations/` tells the schema's level; pyproject.toml pins the version).

Upgrading procrastinate later: bump the pin in pyproject.toml, then add a revision that runs the
package's `sql/migrations/*.sql` files newer than `SCHEMA_LEVEL`, in name order, on databases
installed at this level; see procrastinate's docs, "howto/production/migrations".
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata, resources

from alembic import op
from sqlalchemy import text

revision: str = "564fc9fa4496"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PINNED_VERSION = "3.10"
SCHEMA_LEVEL = "03.04.00_50_post_add_retry_failed_job_procedure"


def _installed_schema() -> str:
    version = metadata.version("procrastinate")
    sql_dir = resources.files("procrastinate.sql")
    migrations = sorted(
        entry.name.removesuffix(".sql")
        for entry in (sql_dir / "migrations").iterdir()
        if entry.name.endswith(".sql")
    )
    level = migrations[-1] if migrations else "(none)"
    if not version.startswith(PINNED_VERSION + ".") or level != SCHEMA_LEVEL:
        raise RuntimeError(
            f"this revision installs procrastinate {PINNED_VERSION}.x's schema ({SCHEMA_LEVEL}); "
            f"procrastinate {version} is installed (schema {level}). Pin procrastinate "
            f"{PINNED_VERSION}.x, or add a revision applying its newer migrations."
        )
    return (sql_dir / "schema.sql").read_text(encoding="utf-8")


def _run_script(script: str) -> None:
    """Run a multi-statement script with dollar-quoted bodies: as one simple-protocol query on
    the raw asyncpg connection, inside Alembic's transaction (asyncpg would prepare it)."""
    if op.get_context().as_sql:
        op.execute(text(script.replace(":", r"\:")))
        return
    driver = op.get_bind().connection.dbapi_connection
    assert driver is not None
    driver.run_async(lambda connection: connection.execute(script))


def upgrade() -> None:
    _run_script(_installed_schema())


def downgrade() -> None:
    _run_script(
        """
        DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
            procrastinate_jobs, procrastinate_workers CASCADE;
        DO $$
        DECLARE
            fn regprocedure;
        BEGIN
            FOR fn IN
                SELECT p.oid::regprocedure FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'
            LOOP
                EXECUTE 'DROP FUNCTION ' || fn || ' CASCADE';
            END LOOP;
        END;
        $$;
        DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type,
            procrastinate_job_status CASCADE;
        """
    )
