"""The single connections of the MX limiter, rates and behaviour store survive a restart of
PostgreSQL: a statement during the outage raises (a release does not), and they reconnect by
themselves. The limiter takes back the slots of leases still in use, and no new one for a
grace period, so a group's budget holds across the restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg  # type: ignore[import-untyped]
import pytest

from app.db.mx_behaviour import PostgresBehaviourStore
from app.db.mx_limits import PostgresMxLimiter
from app.db.mx_rates import PostgresRateLimiter
from app.engine import errors
from app.engine.rules.adapt import MxStats
from app.engine.rules.rates import Rate
from app.outage import is_outage
from tests.fixtures.restartable_postgres import RestartablePostgres, restartable_postgres

__all__ = ["restartable_postgres"]  # the fixture, for this module's tests
T = TypeVar("T")

HELD = """
SELECT objid::int FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 2 AND granted
  AND classid = hashtext('mxprobe:' || $1::text)::oid
ORDER BY 1
"""


@pytest.fixture
async def limiter(restartable_postgres: RestartablePostgres) -> AsyncIterator[PostgresMxLimiter]:
    made = await PostgresMxLimiter.connect(restartable_postgres.url, per_mx=2, total=10)
    yield made
    await made.close()


async def held(url: str, key: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [row[0] for row in await conn.fetch(HELD, key)]
    finally:
        await conn.close()


async def eventually_held(url: str, key: str, slots: list[int]) -> None:
    for _ in range(200):
        if await held(url, key) == slots:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key}: {await held(url, key)} held, not {slots}")


async def once_back(attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt()`'s value once it stops failing for want of the database (within 10 s)."""
    for _ in range(200):
        try:
            return await attempt()
        except Exception as exc:
            if not is_outage(exc):
                raise
        await asyncio.sleep(0.05)
    return await attempt()


async def test_the_limiter_takes_back_its_slots_after_a_restart(
    limiter: PostgresMxLimiter, restartable_postgres: RestartablePostgres
) -> None:
    url = restartable_postgres.url
    await limiter.grow("mx.a.test")
    kept = await limiter.try_acquire("mx.a.test")
    assert kept is not None
    assert await held(url, "mx.a.test") == [0]

    restartable_postgres.restart()
    # Reconnected in the background, with no call of ours: the slot is ours again.
    await eventually_held(url, "mx.a.test", [0])
    assert await limiter.try_acquire("mx.a.test") is None  # the grace after reconnecting
    other = await PostgresMxLimiter.connect(url, per_mx=2, total=10)
    try:
        taken = await other.try_acquire("mx.a.test")
        assert taken is not None
        assert taken.token // 1_000_000 == 1  # slot 0 is still held
    finally:
        await other.close()

    await limiter.release(kept)
    assert await held(url, "mx.a.test") == []


async def test_a_release_while_the_database_is_down_is_not_an_error(
    limiter: PostgresMxLimiter, restartable_postgres: RestartablePostgres
) -> None:
    lease = await limiter.try_acquire("mx.b.test")
    assert lease is not None
    restartable_postgres.stop()
    try:
        await limiter.release(lease)  # the server dropped the lock with the session
        assert await limiter.wanted() == set()
        with pytest.raises(errors.StoreUnavailable, match="Connect call failed") as failed:
            await limiter.try_acquire("mx.b.test")
        assert isinstance(failed.value.__cause__, OSError)  # the driver's error, kept
        assert is_outage(failed.value)
    finally:
        restartable_postgres.start()
    for _ in range(int(2 * PostgresMxLimiter.REOPEN_GRACE / 0.05)):  # reconnect, then grace
        if (again := await limiter.try_acquire("mx.b.test")) is not None:
            break
        await asyncio.sleep(0.05)
    assert again is not None
    assert await held(restartable_postgres.url, "mx.b.test") == [again.token // 1_000_000]


async def test_rates_and_behaviour_reconnect_after_a_restart(
    restartable_postgres: RestartablePostgres,
) -> None:
    url = restartable_postgres.url
    rates = await PostgresRateLimiter.connect(url, default=Rate(count=100, unit="s"))
    store = await PostgresBehaviourStore.connect(url)
    try:
        assert await rates.reserve("mx.c.test") >= 0.0
        await store.exchange({"mx.c.test": MxStats(replies=1.0)})

        restartable_postgres.restart()

        assert await once_back(lambda: rates.reserve("mx.c.test")) >= 0.0
        shared = await once_back(lambda: store.exchange({"mx.c.test": MxStats(replies=1.0)}))
        assert shared["mx.c.test"].replies > 1.0  # the row written before the restart, and now
    finally:
        await rates.close()
        await store.close()


async def test_while_the_database_is_down_every_store_says_so_in_the_engines_terms(
    limiter: PostgresMxLimiter, restartable_postgres: RestartablePostgres
) -> None:
    """The engine may not import the driver: `StoreUnavailable`, and it tells an outage from a
    bug (`stores.StoreWatch`: one line for an outage, a traceback for a bug)."""
    url = restartable_postgres.url
    rates = await PostgresRateLimiter.connect(url, default=Rate(count=100, unit="s"))
    store = await PostgresBehaviourStore.connect(url)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "try_acquire": lambda: limiter.try_acquire("mx.d.test"),
        "grow": lambda: limiter.grow("mx.d.test"),
        "refused": lambda: limiter.refused("mx.d.test", seconds=1.0),
        "error_limit": lambda: limiter.error_limit("mx.d.test"),
        "learn_error_limit": lambda: limiter.learn_error_limit("mx.d.test", 3),
        "reserve": lambda: rates.reserve("mx.d.test"),
        "exchange": lambda: store.exchange({"mx.d.test": MxStats(replies=1.0)}),
    }
    try:
        restartable_postgres.stop()
        try:
            for name, call in calls.items():
                with pytest.raises(errors.StoreUnavailable, match="database unavailable"):
                    await call()
                assert await limiter.wanted() == set(), name  # nobody known to wait
        finally:
            restartable_postgres.start()
        assert await once_back(calls["exchange"]) != {}
    finally:
        await rates.close()
        await store.close()


async def test_a_connection_left_mid_protocol_is_dropped_and_the_next_statement_reopens(
    limiter: PostgresMxLimiter,
) -> None:
    """What asyncpg raises when the server's FATAL reached an idle connection just before it
    hung up (app.db.unavailable): an outage, and the connection is not used again."""
    with pytest.raises(errors.StoreUnavailable, match="InternalClientError") as raised:
        async with limiter._shared() as stuck:
            raise asyncpg.exceptions.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            )

    assert isinstance(raised.value.__cause__, asyncpg.exceptions.InternalClientError)
    assert stuck.is_closed()
    await limiter.learn_error_limit("mx.e.test", 3)  # on a new connection
    assert await limiter.error_limit("mx.e.test") == 3
