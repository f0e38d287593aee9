"""Engines and sessions. DATABASE_URL is a plain libpq URL; each driver gets what it needs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

_SSLMODES = {
    "disable": "disable",
    "allow": "allow",
    "prefer": "prefer",
    "require": "require",
    "verify-ca": "verify-ca",
    "verify-full": "verify-full",
}


def asyncpg_url(database_url: str) -> URL:
    """`postgresql://u@h/db?host=/sock&sslmode=require` → SQLAlchemy's asyncpg URL."""
    url = make_url(database_url)
    if url.drivername not in ("postgresql", "postgres") and not url.drivername.startswith(
        "postgresql+"
    ):
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, not {url.drivername}://")
    query = dict(url.query)
    sslmode = query.pop("sslmode", None)
    if isinstance(sslmode, str) and sslmode in _SSLMODES:
        query["ssl"] = _SSLMODES[sslmode]
    for libpq_only in ("connect_timeout", "application_name", "options", "target_session_attrs"):
        query.pop(libpq_only, None)
    return url.set(drivername="postgresql+asyncpg", query=query)


def libpq_url(database_url: str) -> str:
    """The plain URL for psycopg (procrastinate), whatever driver suffix it was given."""
    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(database_url: str, *, pool_size: int = 10, pre_ping: bool = True) -> AsyncEngine:
    """`pre_ping` costs a round trip per checkout; hot paths (workers) recycle instead."""
    return create_async_engine(
        asyncpg_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        pool_recycle=300,
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit at the end, roll back on error."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
