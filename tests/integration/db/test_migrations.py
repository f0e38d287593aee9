"""The migrations: head matches the models, procrastinate's schema is installed, and the whole
history goes down and up again."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from app.db import migrate
from app.db.base import Base
from app.db.session import libpq_url


def _sync_url(url: str) -> str:
    return libpq_url(url).replace("postgresql://", "postgresql+psycopg://", 1)


def test_the_template_is_at_head(fresh_database_url: str) -> None:
    assert migrate.current(fresh_database_url) == migrate.head()


def test_models_and_migrations_agree(fresh_database_url: str) -> None:
    engine = create_engine(_sync_url(fresh_database_url), poolclass=NullPool)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_name": lambda name, type_, _parent: (
                    not (type_ == "table" and str(name).startswith("procrastinate_"))
                ),
            },
        )
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()

    assert differences == []


def test_procrastinate_schema_is_installed(fresh_database_url: str) -> None:
    with psycopg.connect(fresh_database_url) as conn:
        functions = {
            row[0]
            for row in conn.execute(
                "SELECT proname FROM pg_proc WHERE proname LIKE 'procrastinate%'"
            ).fetchall()
        }
    assert {"procrastinate_defer_jobs_v1", "procrastinate_cancel_job_v1"} <= functions


def test_down_to_base_and_up_again(fresh_database_url: str) -> None:
    migrate.downgrade(fresh_database_url, revision="base")
    with psycopg.connect(fresh_database_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relname NOT LIKE 'alembic%'"
        ).fetchone()
        types = conn.execute(
            "SELECT count(*) FROM pg_type WHERE typname LIKE 'procrastinate%'"
        ).fetchone()
    assert left == (0,)
    assert types == (0,)

    migrate.upgrade(fresh_database_url)
    migrate.upgrade(fresh_database_url)  # idempotent

    assert migrate.current(fresh_database_url) == migrate.head()


async def test_upgrade_runs_inside_a_running_event_loop(fresh_database_url: str) -> None:
    """The CLI may call it from anywhere; Alembic's own asyncio.run is kept to its thread."""
    migrate.upgrade(fresh_database_url)

    assert migrate.current(fresh_database_url) == migrate.head()


def test_the_ini_file_points_at_the_scripts() -> None:
    ini = Path(__file__).resolve().parents[3] / "alembic.ini"
    assert ScriptDirectory.from_config(Config(str(ini))).get_current_head() == migrate.head()


BEFORE_JOB_TOKENS = "c3e5a7b9d1f3"


def _token_column(conn: psycopg.Connection) -> tuple[str, ...] | None:
    return conn.execute(
        "SELECT is_nullable FROM information_schema.columns "
        "WHERE table_name = 'bulk_jobs' AND column_name = 'token'"
    ).fetchone()


def test_jobs_made_before_tokens_get_one_each(fresh_database_url: str) -> None:
    migrate.downgrade(fresh_database_url, revision=BEFORE_JOB_TOKENS)
    with psycopg.connect(fresh_database_url) as conn:
        assert _token_column(conn) is None
        conn.execute("INSERT INTO bulk_jobs (total_records) SELECT n FROM generate_series(1, 25) n")

    migrate.upgrade(fresh_database_url)

    with psycopg.connect(fresh_database_url) as conn:
        tokens = [row[0] for row in conn.execute("SELECT token FROM bulk_jobs").fetchall()]
        assert _token_column(conn) == ("NO",)
    assert len(tokens) == 25
    assert len(set(tokens)) == 25
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", token) for token in tokens)
    with (
        psycopg.connect(fresh_database_url) as conn,
        pytest.raises(psycopg.errors.UniqueViolation),
    ):
        conn.execute("INSERT INTO bulk_jobs (token, total_records) VALUES (%s, 1)", (tokens[0],))
    with (
        psycopg.connect(fresh_database_url) as conn,
        pytest.raises(psycopg.errors.NotNullViolation),
    ):
        conn.execute("INSERT INTO bulk_jobs (total_records) VALUES (1)")

    migrate.downgrade(fresh_database_url, revision=BEFORE_JOB_TOKENS)
    with psycopg.connect(fresh_database_url) as conn:
        assert _token_column(conn) is None
        assert conn.execute("SELECT count(*) FROM bulk_jobs").fetchone() == (25,)
