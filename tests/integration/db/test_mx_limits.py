"""Per-MX budgets shared through PostgreSQL hold across processes (one connection each), and
so does what they learn: slow start from one session, and the budget a 421 sets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
import pytest

from app.db.mx_limits import PostgresMxLimiter
from app.db.session import libpq_url
from app.engine import Lease

Factory = Callable[..., Awaitable[PostgresMxLimiter]]


@pytest.fixture
async def limiter_factory(fresh_database_url: str) -> AsyncIterator[Factory]:
    database_url = fresh_database_url
    made: list[PostgresMxLimiter] = []

    async def make(*, per_mx: int = 2, total: int = 100, **kw: object) -> PostgresMxLimiter:
        limiter = await PostgresMxLimiter.connect(
            libpq_url(database_url),
            per_mx=per_mx,
            total=total,
            **kw,  # type: ignore[arg-type]
        )
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


async def test_two_processes_share_one_budget_per_mx(limiter_factory: Factory) -> None:
    first, second = await limiter_factory(), await limiter_factory()
    await first.grow("mx.shared.test")

    a = await first.try_acquire("mx.shared.test")
    b = await second.try_acquire("mx.shared.test")
    c = await second.try_acquire("mx.shared.test")

    assert a is not None
    assert b is not None
    assert c is None
    await first.release(a)
    assert await second.try_acquire("mx.shared.test") is not None


async def test_other_mx_groups_are_not_blocked(limiter_factory: Factory) -> None:
    limiter = await limiter_factory(per_mx=1)

    assert await limiter.try_acquire("gmail") is not None
    assert await limiter.try_acquire("gmail") is None
    assert await limiter.try_acquire("mx.other.test") is not None


async def test_a_dead_process_frees_its_slots_at_once(limiter_factory: Factory) -> None:
    doomed, survivor = await limiter_factory(per_mx=1), await limiter_factory(per_mx=1)
    assert await doomed.try_acquire("mx.crash.test") is not None
    assert await survivor.try_acquire("mx.crash.test") is None

    await doomed.close()  # as kill -9 would: the connection goes, and its locks with it

    assert await survivor.try_acquire("mx.crash.test") is not None


async def test_the_global_cap_holds_across_groups(limiter_factory: Factory) -> None:
    one, two = await limiter_factory(per_mx=5, total=3), await limiter_factory(per_mx=5, total=3)

    taken = [
        await one.try_acquire("mx.a.test"),
        await two.try_acquire("mx.b.test"),
        await one.try_acquire("mx.c.test"),
    ]

    assert all(taken)
    assert await two.try_acquire("mx.d.test") is None


async def test_per_provider_overrides(limiter_factory: Factory) -> None:
    limiter = await limiter_factory(per_mx=5, overrides={"gmail": 1})

    assert await limiter.try_acquire("gmail") is not None
    assert await limiter.try_acquire("gmail") is None


async def test_giving_every_slot_back_leaves_no_lock_behind(
    limiter_factory: Factory, fresh_database_url: str
) -> None:
    """Advisory locks stack within a session: taking a slot must never lock one we hold."""
    database_url = fresh_database_url
    limiter = await limiter_factory(per_mx=3, total=5)
    for _ in range(5):
        await limiter.grow("mx.stack.test")
    leases = [await limiter.try_acquire("mx.stack.test") for _ in range(4)]
    held = [lease for lease in leases if lease is not None]
    for lease in held:
        await limiter.release(lease)

    assert len(held) == 3
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        pid = await limiter._conn.fetchval("SELECT pg_backend_pid()")
        left = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1", pid
        )
    finally:
        await conn.close()
    assert left == 0


async def take_all(limiter: PostgresMxLimiter, key: str) -> list[Lease]:
    """Every slot of `key` the limiter gives right now."""
    leases = []
    while (lease := await limiter.try_acquire(key)) is not None:
        leases.append(lease)
    return leases


async def test_a_group_starts_at_one_session_and_grows_to_its_limit(
    limiter_factory: Factory,
) -> None:
    one, other = await limiter_factory(per_mx=3), await limiter_factory(per_mx=3)

    assert len(await take_all(one, "mx.grow.test")) == 1
    await other.grow("mx.grow.test")  # another process's growth counts for everyone
    assert len(await take_all(one, "mx.grow.test")) == 1
    for _ in range(5):
        await one.grow("mx.grow.test")
    assert len(await take_all(other, "mx.grow.test")) == 1  # 3 in all: the limit


async def test_a_421_sets_the_budget_to_the_sessions_open_for_the_cool_down(
    limiter_factory: Factory,
) -> None:
    worker, api = await limiter_factory(per_mx=5), await limiter_factory(per_mx=5)
    for _ in range(4):
        await worker.grow("mx.busy.test")
    assert await worker.try_acquire("mx.busy.test") is not None
    assert await worker.try_acquire("mx.busy.test") is not None
    *kept, refused = await take_all(api, "mx.busy.test")
    assert len(kept) == 2

    # The server refused the api's fifth session: it takes the four that were open.
    await api.refused("mx.busy.test", seconds=0.5)
    await api.release(refused)

    await worker.grow("mx.busy.test")  # no growth during the cool-down
    assert await take_all(worker, "mx.busy.test") == []
    await api.release(kept[0])
    assert len(await take_all(worker, "mx.busy.test")) == 1  # back to four open
    await asyncio.sleep(0.6)
    await worker.grow("mx.busy.test")
    assert len(await take_all(worker, "mx.busy.test")) == 1


async def test_an_error_limit_learnt_by_one_process_holds_for_every_process(
    limiter_factory: Factory,
) -> None:
    api, worker = await limiter_factory(), await limiter_factory()
    assert await worker.error_limit("mx.strict.test") is None

    await api.learn_error_limit("mx.strict.test", 2)
    await worker.learn_error_limit("mx.strict.test", 4)  # the lowest learnt wins

    assert await worker.error_limit("mx.strict.test") == 2
    assert await api.error_limit("mx.other.test") is None
