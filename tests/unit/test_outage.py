"""Telling an outage of the database from a statement's own error, and the back-off."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import psycopg
import pytest
from procrastinate.exceptions import ConnectorException
from sqlalchemy import exc as sa_exc

from app.outage import backoff, is_outage


def wrapped(cause: BaseException, outer: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        wrapped(psycopg.OperationalError("connection failed"), ConnectorException()),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        sa_exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
        wrapped(
            asyncpg.exceptions.InterfaceError("connection is closed"),
            sa_exc.InterfaceError("SELECT 1", {}, Exception("closed")),
        ),
    ],
)
def test_outages(exc: BaseException) -> None:
    assert is_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        None,
        ValueError("a bug"),
        psycopg.errors.UniqueViolation("duplicate key"),
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        wrapped(psycopg.errors.RaiseException("job not found"), ConnectorException()),
        sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
    ],
)
def test_not_outages(exc: BaseException | None) -> None:
    assert not is_outage(exc)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for attempt, ceiling in [(0, 0.1), (1, 0.2), (3, 0.8), (10, 5.0), (500, 5.0)]:
        delays = [backoff(attempt, cap=5.0) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
