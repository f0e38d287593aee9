"""A database outage, as the engine's shared stores report it: `errors.StoreUnavailable`.

The MX limits, send rates and behaviour book the engine shares with other processes are
PostgreSQL tables here, and the engine knows nothing of asyncpg (nor may it import `app.db`
or `app.outage`). Their adapters translate: an error that says the server is gone or not
taking us yet (`app.outage.is_outage`) reaches the engine as `StoreUnavailable`, raised from
the driver's error; any other error goes through as it is, a bug to be logged with its
traceback.

One more error means an outage on a connection of our own: asyncpg's `InternalClientError`
("cannot switch to state 12; another operation (2) is in progress"). A server that shuts down
sends each idle session a FATAL error before it hangs up; asyncpg, idle, takes that error as
a protocol fault and waits for a sync that never comes, so a statement made in the moment
before the hang-up is seen finds the connection busy. Found by the outage tests (about one
stop in fifteen under load). The connection is of no more use either way: it is dropped, and
the next statement opens another.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]

from app.engine import errors
from app.outage import OwnConnection, is_outage


def as_engine_error(exc: Exception, *, store: str) -> Exception:
    """What the engine is told of `exc`, raised by a statement of `store` (its name, for the
    message): `StoreUnavailable` for an outage, on one line; `exc` itself for anything else."""
    if isinstance(exc, errors.StoreUnavailable):
        return exc
    if not (is_outage(exc) or isinstance(exc, asyncpg.exceptions.InternalClientError)):
        return exc
    said = " ".join(str(exc).split())  # one line, whatever the driver wrote
    return errors.StoreUnavailable(f"{store}: database unavailable ({type(exc).__name__}: {said})")


class SharedStore(OwnConnection):
    """An `OwnConnection` behind one of the engine's Protocols: its statements raise what
    the engine knows (`as_engine_error`)."""

    STORE = "shared store"
    """Its name in messages."""

    @contextlib.asynccontextmanager
    async def _shared(self) -> AsyncIterator[asyncpg.Connection]:
        """`_own()`, with the errors the engine is told."""
        try:
            async with self._own() as connection:
                yield connection
        except Exception as exc:
            told = as_engine_error(exc, store=self.STORE)
            if told is exc:
                raise
            if isinstance(exc, asyncpg.exceptions.InternalClientError) and not (
                self._conn.is_closed()
            ):
                self._conn.terminate()  # stuck mid-protocol: reopened by the next statement
            raise told from exc
