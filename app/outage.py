"""Telling a database outage (server restarting, down, unreachable) from any other error, the
jittered, capped back-off with which every process waits one out, and how long it still waits
once it is asked to stop (`Stopping`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg  # type: ignore[import-untyped]
import psycopg
from sqlalchemy import exc as sa_exc

FIRST_DELAY = 0.1

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_outage(exc: BaseException | None) -> bool:
    """True when `exc` (or what it wraps) says the server is gone or not accepting us yet, as
    opposed to a statement's own error. Covers psycopg, asyncpg and SQLAlchemy's wrapping."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, psycopg.errors.QueryCanceled | asyncpg.exceptions.QueryCanceledError):
            return False  # a statement timeout or a cancel: the server is fine
        if isinstance(
            exc,
            OSError
            | psycopg.OperationalError
            | asyncpg.exceptions.ConnectionDoesNotExistError
            | asyncpg.exceptions.InterfaceError
            | asyncpg.exceptions.PostgresConnectionError
            | asyncpg.exceptions.OperatorInterventionError
            | asyncpg.exceptions.CannotConnectNowError,
        ):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def backoff(attempt: int, *, cap: float) -> float:
    """Seconds to wait before try number `attempt` + 1 (0-based): doubling from 0.1 s, capped
    at `cap`, with full jitter on the upper half so processes do not come back in step."""
    ceiling = min(cap, FIRST_DELAY * 2 ** min(attempt, 30))
    return random.uniform(ceiling / 2, ceiling)


class GaveUp(Exception):
    """A wait for the database given up because the process is stopping (raised from the outage
    that made it wait, so `is_outage` still holds)."""


class Stopping:
    """A process's request to stop, as its waits for the database see it.

    Until a stop is requested an outage is waited out however long it lasts. Then a wait that
    finishes work already done (storing a result, marking a task done) goes on for the grace
    period; one that would start new work (fetching a task) ends at once. Every such wait,
    sleeping or in a query, is cut at its deadline (`GaveUp`): a process told to stop while
    the database is down exits in time rather than waiting for it."""

    def __init__(self) -> None:
        self._asked_at: float | None = None  # loop time of the first request
        self._deadline: float | None = None
        self._bounds: dict[asyncio.Timeout, bool] = {}  # live waits → new work?

    @property
    def requested(self) -> bool:
        return self._asked_at is not None

    def request(self, *, grace: float) -> None:
        """Stop waiting for the database `grace` seconds from now (or sooner, if an earlier
        request said so). New work is not waited for from now on."""
        now = asyncio.get_running_loop().time()
        self._asked_at = now if self._asked_at is None else self._asked_at
        deadline = now + max(grace, 0.0)
        self._deadline = deadline if self._deadline is None else min(self._deadline, deadline)
        for bound, new_work in self._bounds.items():
            bound.reschedule(self._when(new_work=new_work))

    def _when(self, *, new_work: bool) -> float | None:
        return self._asked_at if new_work else self._deadline

    async def bounded(self, operation: Callable[[], Awaitable[T]], *, new_work: bool) -> T:
        """`operation()`, cut (`GaveUp`) when the wait it is part of must end."""
        bound = asyncio.timeout_at(self._when(new_work=new_work))
        try:
            async with bound:
                self._bounds[bound] = new_work
                try:
                    return await operation()
                finally:
                    del self._bounds[bound]
        except TimeoutError as exc:
            if bound.expired():
                raise GaveUp("stopping: no more waiting for the database") from exc
            raise

    async def pause(self, delay: float, *, new_work: bool) -> bool:
        """Sleep `delay` seconds, or less if the wait must end first: False then."""
        try:
            await self.bounded(lambda: asyncio.sleep(delay), new_work=new_work)
        except GaveUp:
            return False
        return True


async def until_back(
    operation: Callable[[], Awaitable[T]],
    *,
    cap: float,
    noticed: Callable[[BaseException, int], Awaitable[None]] | None = None,
    stopping: Stopping | None = None,
    new_work: bool = False,
) -> T:
    """`operation()`, tried again after a `backoff` pause for as long as it fails because the
    database is unreachable (any other error is raised); `noticed(exc, attempt)` is awaited
    before each pause. With `stopping`, no longer than it allows (then `GaveUp`); `new_work`:
    the operation starts work (a fetch), not waited for at all once a stop is requested."""
    attempt = 0
    while True:
        try:
            if stopping is None:
                return await operation()
            return await stopping.bounded(operation, new_work=new_work)
        except Exception as exc:
            if isinstance(exc, GaveUp) or not is_outage(exc):
                raise
            if noticed is not None:
                await noticed(exc, attempt)
            delay = backoff(attempt, cap=cap)
            if stopping is None:
                await asyncio.sleep(delay)
            elif not await stopping.pause(delay, new_work=new_work):
                raise GaveUp("stopping: no more waiting for the database") from exc
            attempt += 1


RECONNECT_MAX_DELAY = 1.0
"""The longest pause between attempts to reopen a lost `OwnConnection` (one connection per
process: cheap to retry)."""


class OwnConnection:
    """One asyncpg connection of a process's own (the MX limits, rates and behaviour hold one
    each), used one statement at a time, and reopened when lost: at once in the background
    (retrying while the server is down), or by the next statement, whichever comes first. A
    statement that lost the server raises; one made while it is down raises too."""

    def __init__(self, connection: asyncpg.Connection, *, dsn: str | None = None) -> None:
        self._conn = connection
        self._dsn = dsn
        self._lock = asyncio.Lock()  # one connection: one statement at a time
        self._closing = False
        self._reopening: asyncio.Task[None] | None = None
        self._watch(connection)

    def _watch(self, connection: asyncpg.Connection) -> None:
        if self._dsn is not None:
            connection.add_termination_listener(self._lost)

    def _lost(self, _connection: asyncpg.Connection) -> None:
        if not self._closing and (self._reopening is None or self._reopening.done()):
            self._reopening = asyncio.get_running_loop().create_task(
                self._reopen_soon(), name=f"reconnect-{type(self).__name__}"
            )

    async def _reopen_soon(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                async with self._lock:
                    await self._reopen()
                return
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("%s: could not reconnect", type(self).__name__)
                    return  # the next statement tries again
                await asyncio.sleep(backoff(attempt, cap=RECONNECT_MAX_DELAY))
                attempt += 1

    async def _reopen(self) -> None:
        """(Under the lock.) A new connection if the current one is closed."""
        if self._conn.is_closed() and self._dsn is not None and not self._closing:
            connection = await asyncpg.connect(self._dsn)
            self._conn = connection
            self._watch(connection)
            log.warning("%s: reconnected to the database", type(self).__name__)
            await self._reconnected(connection)

    @contextlib.asynccontextmanager
    async def _own(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._lock:
            await self._reopen()
            try:
                yield self._conn
            except Exception as exc:
                if is_outage(exc) and not self._conn.is_closed():
                    self._conn.terminate()  # so that it is reopened
                raise

    async def _reconnected(self, connection: asyncpg.Connection) -> None:
        """Restore what the lost session held (a subclass's hook)."""

    async def close(self) -> None:
        self._closing = True
        if self._reopening is not None:
            self._reopening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopening
        await self._conn.close()
