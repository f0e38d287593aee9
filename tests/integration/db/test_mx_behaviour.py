"""The behaviour cache shared through PostgreSQL: what one process saw, every process adapts to."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
import pytest

from app.db.mx_behaviour import READ_WINDOW, PostgresBehaviourStore
from app.db.session import libpq_url
from app.engine.probes.behaviour import MxBehaviour, sync
from app.engine.rules.adapt import COMMAND_FLOOR, HALF_LIFE, TARPIT_CONNECT
from app.settings import Settings
from app.verifiers import sharing_behaviour

Factory = Callable[[], Awaitable[PostgresBehaviourStore]]
KEY = "mx.behaviour.test"


@pytest.fixture
async def store_factory(fresh_database_url: str) -> AsyncIterator[Factory]:
    """Stores on connections of their own, as separate processes have."""
    made: list[PostgresBehaviourStore] = []

    async def make() -> PostgresBehaviourStore:
        store = await PostgresBehaviourStore.connect(libpq_url(fresh_database_url))
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def _age_rows(database_url: str, seconds: float) -> None:
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        await conn.execute(
            "UPDATE mx_behaviour SET updated_at = updated_at - $1::float8 * interval '1 second'",
            seconds,
        )
    finally:
        await conn.close()


async def test_what_one_process_saw_another_adapts_to(store_factory: Factory) -> None:
    first, second = MxBehaviour(), MxBehaviour()
    first_store, second_store = await store_factory(), await store_factory()
    first.observe_tarpit(KEY, 10.0)
    first.observe_tarpit(KEY, 10.0)
    for _ in range(20):
        first.observe_reply("gmail", 0.05)
    assert second.timeouts(KEY, connect=10, command=10) == (10, 10)

    await sync(first, first_store)
    await sync(second, second_store)

    assert second.timeouts(KEY, connect=10, command=10) == (TARPIT_CONNECT, COMMAND_FLOOR)
    assert second.timeouts("gmail", connect=10, command=10) == (10, COMMAND_FLOOR)
    gmail = second.stats("gmail")
    assert gmail is not None
    assert gmail.replies == pytest.approx(20, rel=1e-3)
    assert gmail.latency_ewma == pytest.approx(0.05, rel=1e-3)


async def test_counts_from_every_process_add_up_and_latencies_blend(
    store_factory: Factory,
) -> None:
    first, second = MxBehaviour(), MxBehaviour()
    first_store, second_store = await store_factory(), await store_factory()
    for _ in range(10):
        first.observe_reply(KEY, 0.1)
        second.observe_reply(KEY, 0.3)
    first.observe_busy(KEY)
    second.observe_busy(KEY)
    second.observe_timeout(KEY)

    await sync(first, first_store)
    await sync(second, second_store)
    await sync(first, first_store)

    for book in (first, second):
        stats = book.stats(KEY)
        assert stats is not None
        assert stats.replies == pytest.approx(20, rel=1e-3)
        assert stats.latency_ewma == pytest.approx(0.2, rel=1e-3)
        assert (stats.busy, stats.timeouts) == (
            pytest.approx(2, rel=1e-3),
            pytest.approx(1, rel=1e-3),
        )


async def test_counts_halve_every_half_life_and_old_rows_are_not_read(
    store_factory: Factory, fresh_database_url: str
) -> None:
    book, store = MxBehaviour(), await store_factory()
    for _ in range(3):
        book.observe_tarpit(KEY, 10.0)
    book.observe_tarpit("mx.long-ago.test", 10.0)
    await sync(book, store)
    assert book.timeouts(KEY, connect=10, command=10) == (TARPIT_CONNECT, COMMAND_FLOOR)
    await _age_rows(fresh_database_url, HALF_LIFE)

    book.observe_tarpit("mx.long-ago.test", 10.0)
    await sync(book, store)  # that row's age is decayed before the new tarpit is added
    await _age_rows(fresh_database_url, READ_WINDOW - 2 * HALF_LIFE)

    shared = await store.exchange({})
    assert shared[KEY].tarpits == pytest.approx(3 / 8, rel=1e-3)
    assert shared["mx.long-ago.test"].tarpits == pytest.approx(1.5 / 4, rel=1e-3)
    book.absorb(shared)
    assert book.timeouts(KEY, connect=10, command=10) == (10, 10)  # trusted again

    await _age_rows(fresh_database_url, 2 * HALF_LIFE)
    assert await store.exchange({}) == {}


async def test_sharing_behaviour_flushes_what_was_seen_on_exit(
    store_factory: Factory, fresh_database_url: str
) -> None:
    settings = Settings(database_url=fresh_database_url, behaviour_sync_interval=3600)
    book = MxBehaviour()

    async with sharing_behaviour(settings, book, shared=True):
        book.observe_tarpit(KEY, 10.0)
        book.observe_tarpit(KEY, 10.0)

    other = MxBehaviour()
    await sync(other, await store_factory())
    assert other.timeouts(KEY, connect=10, command=10) == (TARPIT_CONNECT, COMMAND_FLOOR)
