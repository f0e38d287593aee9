"""What the engine is told of a database error raised by a shared store's statement: an
outage as `StoreUnavailable` (on one line), anything else as it is."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import pytest

from app.db.unavailable import as_engine_error
from app.engine import errors


@pytest.mark.parametrize(
    "outage",
    [
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
        asyncpg.exceptions.CannotConnectNowError("the database system is\nshutting down"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        # An idle connection sent the server's FATAL before it hangs up (see the module).
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_an_outage_reaches_the_engine_as_store_unavailable(outage: Exception) -> None:
    told = as_engine_error(outage, store="MX limits")

    assert isinstance(told, errors.StoreUnavailable)
    assert str(told).startswith(f"MX limits: database unavailable ({type(outage).__name__}: ")
    assert "\n" not in str(told)


@pytest.mark.parametrize(
    "other",
    [
        asyncpg.exceptions.UndefinedTableError('relation "mx_budgets" does not exist'),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        ValueError("a bug"),
        errors.StoreUnavailable("said already"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_anything_else_goes_through_as_it_is(other: Exception) -> None:
    assert as_engine_error(other, store="MX limits") is other
