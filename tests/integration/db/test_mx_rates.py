"""Per-MX send rates shared through PostgreSQL: every process books one schedule per group."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
import pytest

from app.db.mx_rates import PostgresRateLimiter
from app.db.session import libpq_url
from app.engine.rules.rates import Rate

Factory = Callable[..., Awaitable[PostgresRateLimiter]]


@pytest.fixture
async def rates_factory(fresh_database_url: str) -> AsyncIterator[Factory]:
    """Each limiter has its own connection, as each worker process does."""
    made: list[PostgresRateLimiter] = []

    async def make(**kw: object) -> PostgresRateLimiter:
        limiter = await PostgresRateLimiter.connect(
            libpq_url(fresh_database_url),
            **kw,  # type: ignore[arg-type]
        )
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


async def test_two_processes_book_one_schedule(rates_factory: Factory) -> None:
    first = await rates_factory(default=Rate(1, "s"))
    second = await rates_factory(default=Rate(1, "s"))

    delays = [await (first, second)[n % 2].reserve("mx.shared.test") for n in range(10)]

    # Each booking is one interval after the one before, less the few ms between the calls.
    assert delays[0] < 0.5
    gaps = [later - earlier for earlier, later in itertools.pairwise(delays)]
    assert all(0.8 < gap <= 1.0 + 1e-3 for gap in gaps), gaps


async def test_concurrent_reservations_never_share_a_send_time(rates_factory: Factory) -> None:
    limiters = [await rates_factory(default=Rate(1, "s")) for _ in range(2)]

    delays = await asyncio.gather(*(limiters[n % 2].reserve("gmail") for n in range(20)))

    # Twenty distinct slots one second apart, whatever order the row lock let them in.
    gaps = [later - earlier for earlier, later in itertools.pairwise(sorted(delays))]
    assert all(0.8 < gap < 1.2 for gap in gaps), gaps
    assert min(delays) < 0.5


async def test_a_batch_books_one_interval_per_rcpt(rates_factory: Factory) -> None:
    limiter = await rates_factory(overrides={"gmail": Rate(1, "s")})

    assert await limiter.reserve("gmail", 5) < 0.5
    assert await limiter.reserve("gmail") == pytest.approx(5.0, abs=0.2)


async def test_groups_without_a_rate_never_reach_the_database(
    rates_factory: Factory, fresh_database_url: str
) -> None:
    limiter = await rates_factory(overrides={"gmail": Rate(1, "s")})

    assert [await limiter.reserve("mx.free.test", 50) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await limiter.reserve("gmail") == 0.0

    conn = await asyncpg.connect(libpq_url(fresh_database_url))
    try:
        keys = await conn.fetch("SELECT key FROM mx_rates ORDER BY key")
    finally:
        await conn.close()
    assert [row["key"] for row in keys] == ["gmail"]


async def test_a_schedule_in_the_past_means_no_wait(rates_factory: Factory) -> None:
    limiter = await rates_factory(default=Rate(20, "s"))
    await limiter.reserve("mx.idle.test")

    await asyncio.sleep(0.1)

    assert await limiter.reserve("mx.idle.test") == 0.0
    assert 0.0 < await limiter.reserve("mx.idle.test") <= 0.05  # one interval, less the call
