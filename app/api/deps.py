"""Request dependencies: the database session of one request's unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.session import session_scope
from app.settings import Settings


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with session_scope(request.app.state.sessionmaker) as session:
        yield session


def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return factory


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# scope="function": the session commits (or rolls back) when the handler returns, before the
# response is sent, so a client never reads a job_id whose transaction is not committed yet.
DbSession = Annotated[AsyncSession, Depends(_session, scope="function")]
SessionFactory = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]
AppSettings = Annotated[Settings, Depends(_settings)]
