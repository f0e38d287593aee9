"""Telling an outage of the database from a statement's own error, the back-off, and how long
the waits go on once the process is asked to stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
import psycopg
import pytest
from procrastinate import sql
from procrastinate.exceptions import ConnectorException
from procrastinate.manager import JobManager
from procrastinate.testing import InMemoryConnector
from sqlalchemy import exc as sa_exc

from app import queue
from app.outage import GaveUp, Stopping, backoff, is_outage, until_back


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


REFUSED = ConnectionRefusedError(111, "Connection refused")


async def test_until_back_waits_out_an_outage_and_returns() -> None:
    calls = 0

    async def query() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise REFUSED
        return "done"

    assert await until_back(query, cap=0.01, stopping=Stopping()) == "done"
    assert calls == 4


async def test_until_back_raises_any_other_error_at_once() -> None:
    async def query() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await until_back(query, cap=0.01, stopping=Stopping())


async def down() -> None:
    raise REFUSED


async def hangs() -> None:
    await asyncio.sleep(3600)  # a query stuck waiting for a connection


@pytest.mark.parametrize("operation", [down, hangs])
async def test_after_a_stop_request_an_outage_is_waited_out_only_for_the_grace_period(
    operation: Callable[[], Awaitable[None]],
) -> None:
    stopping = Stopping()
    loop = asyncio.get_running_loop()
    waiting = asyncio.ensure_future(until_back(operation, cap=0.05, stopping=stopping))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # no stop requested: waits however long it lasts

    asked = loop.time()
    stopping.request(grace=0.3)
    with pytest.raises(GaveUp) as gave_up:
        await waiting

    assert 0.3 <= loop.time() - asked < 0.45
    assert is_outage(gave_up.value)
    started = loop.time()  # past the deadline: given up at once
    with pytest.raises(GaveUp):
        await until_back(operation, cap=0.05, stopping=stopping)
    assert loop.time() - started < 0.05


@pytest.mark.parametrize("operation", [down, hangs])
async def test_new_work_is_not_waited_for_once_a_stop_is_requested(
    operation: Callable[[], Awaitable[None]],
) -> None:
    stopping = Stopping()
    loop = asyncio.get_running_loop()
    fetching = asyncio.ensure_future(
        until_back(operation, cap=0.05, stopping=stopping, new_work=True)
    )
    await asyncio.sleep(0.1)

    asked = loop.time()
    stopping.request(grace=10.0)
    with pytest.raises(GaveUp):
        await fetching

    assert loop.time() - asked < 0.05


async def test_a_second_request_can_only_shorten_the_grace_period() -> None:
    stopping = Stopping()
    loop = asyncio.get_running_loop()
    waiting = asyncio.ensure_future(until_back(hangs, cap=0.05, stopping=stopping))
    await asyncio.sleep(0)
    stopping.request(grace=10.0)
    stopping.request(grace=0.1)
    stopping.request(grace=20.0)
    asked = loop.time()
    with pytest.raises(GaveUp):
        await waiting
    assert loop.time() - asked < 0.2


async def test_a_query_that_times_out_by_itself_is_not_taken_for_a_stop() -> None:
    async def slow() -> None:
        raise TimeoutError("statement timeout of our own")

    with pytest.raises(TimeoutError, match="of our own"):
        await Stopping().bounded(slow, new_work=False)


async def test_the_query_not_waited_for_after_a_stop_is_procrastinates_fetch() -> None:
    """app.queue tells a fetch by its text: this fails if procrastinate fetches otherwise."""
    connector = InMemoryConnector()
    jobs = JobManager(connector)
    worker_id = await jobs.register_worker()

    assert await jobs.fetch_job(queues=None, worker_id=worker_id) is None

    assert connector.queries[-1][0] == "fetch_job"
    assert queue.FETCH_JOB == sql.queries["fetch_job"]
