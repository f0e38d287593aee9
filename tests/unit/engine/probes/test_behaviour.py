"""The behaviour book: observations count at once, and travel between processes by `sync`."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping

import pytest

from app.engine import errors
from app.engine.probes.behaviour import MxBehaviour, sync, sync_every
from app.engine.rules.adapt import COMMAND_FLOOR, TARPIT_CONNECT, MxStats, merged

KEY = "mx.adapt.test"


class MemoryStore:
    """A `BehaviourStore` in memory: counts add up, nothing decays."""

    def __init__(self) -> None:
        self.rows: dict[str, MxStats] = {}
        self.exchanges = 0
        self.failures = 0
        self.succeeded = asyncio.Event()

    async def exchange(self, deltas: Mapping[str, MxStats]) -> dict[str, MxStats]:
        self.exchanges += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database went away")
        for key, delta in deltas.items():
            self.rows[key] = merged(self.rows[key], delta) if key in self.rows else delta
        self.succeeded.set()
        return dict(self.rows)


def test_a_group_never_seen_keeps_the_configured_timeouts() -> None:
    book = MxBehaviour()

    assert book.stats(KEY) is None
    assert book.timeouts(KEY, connect=10, command=10) == (10, 10)


def test_replies_give_the_mean_latency() -> None:
    book = MxBehaviour()
    for seconds in (0.1, 0.2, 0.3, 0.2, 0.2):
        book.observe_reply(KEY, seconds)

    stats = book.stats(KEY)

    assert stats is not None
    assert stats.replies == 5
    assert stats.latency_ewma == pytest.approx(0.2)
    assert book.timeouts(KEY, connect=10, command=10) == (10, COMMAND_FLOOR)


def test_two_slow_banners_make_a_tarpit_before_any_sync() -> None:
    book = MxBehaviour()

    book.observe_tarpit(KEY, 10.0)
    assert book.timeouts(KEY, connect=10, command=10) == (10, 10)
    book.observe_tarpit(KEY, 10.0)

    assert book.timeouts(KEY, connect=10, command=10) == (TARPIT_CONNECT, COMMAND_FLOOR)
    assert book.timeouts("mx.other.test", connect=10, command=10) == (10, 10)


def test_each_kind_is_counted_apart() -> None:
    book = MxBehaviour()
    book.observe_timeout(KEY)
    book.observe_busy(KEY)
    book.observe_busy(KEY)
    book.observe_tarpit(KEY, 9.0)

    assert book.stats(KEY) == MxStats(replies=0, latency_ewma=None, timeouts=1, busy=2, tarpits=1)


def test_drain_hands_over_each_observation_once() -> None:
    book = MxBehaviour()
    book.observe_reply(KEY, 0.5)
    book.observe_busy(KEY)

    assert book.drain() == {KEY: MxStats(replies=1, latency_ewma=0.5, busy=1)}
    assert book.drain() == {}


def test_the_shared_view_and_what_is_not_yet_flushed_add_up() -> None:
    book = MxBehaviour()
    book.absorb({KEY: MxStats(replies=9, latency_ewma=0.1, tarpits=1)})
    book.observe_reply(KEY, 1.0)
    book.observe_tarpit(KEY, 8.5)

    stats = book.stats(KEY)

    assert stats == MxStats(replies=10, latency_ewma=pytest.approx(0.19), tarpits=2)
    assert stats.tarpitting


async def test_sync_shares_what_one_process_saw_with_another() -> None:
    store = MemoryStore()
    first, second = MxBehaviour(), MxBehaviour()
    first.observe_tarpit(KEY, 10.0)
    first.observe_tarpit(KEY, 10.0)

    await sync(first, store)
    await sync(second, store)

    assert second.timeouts(KEY, connect=10, command=10) == (TARPIT_CONNECT, COMMAND_FLOOR)
    assert first.stats(KEY) == second.stats(KEY)  # nothing counted twice


async def test_sync_every_syncs_once_more_when_stopped() -> None:
    store, book, stop = MemoryStore(), MxBehaviour(), asyncio.Event()
    task = asyncio.create_task(sync_every(book, store, interval=3600, stop=stop))
    book.observe_busy(KEY)

    stop.set()
    await asyncio.wait_for(task, timeout=5)

    assert store.exchanges == 1
    assert store.rows[KEY].busy == 1


async def test_a_failed_sync_is_logged_and_the_next_one_goes_ahead(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, book, stop = MemoryStore(), MxBehaviour(), asyncio.Event()
    store.failures = 1
    task = asyncio.create_task(sync_every(book, store, interval=0.01, stop=stop))
    book.observe_busy(KEY)  # lost with the failed sync: the record is advisory
    await asyncio.wait_for(store.succeeded.wait(), timeout=5)
    book.observe_timeout(KEY)

    stop.set()
    await asyncio.wait_for(task, timeout=5)

    assert "could not share MX behaviour" in caplog.text
    assert book.stats(KEY) == MxStats(timeouts=1)


class UnreachableStore(MemoryStore):
    """A store whose database goes away for `failures` exchanges, then comes back."""

    def __init__(self, *, failures: int, error: Exception) -> None:
        super().__init__()
        self.failures = failures
        self.error = error

    async def exchange(self, deltas: Mapping[str, MxStats]) -> dict[str, MxStats]:
        if self.failures:
            self.exchanges += 1
            self.failures -= 1
            raise self.error
        return await super().exchange(deltas)


async def run_until_shared(store: MemoryStore) -> None:
    book, stop = MxBehaviour(), asyncio.Event()
    task = asyncio.create_task(sync_every(book, store, interval=0.001, stop=stop))
    await asyncio.wait_for(store.succeeded.wait(), timeout=5)
    stop.set()
    await asyncio.wait_for(task, timeout=5)


async def test_an_outage_is_one_line_when_it_starts_and_one_when_sharing_works_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 3-minute outage was ~1,500 tracebacks in a worker's log: now it is two lines."""
    caplog.set_level(logging.DEBUG, logger="app.engine.probes.behaviour")
    outage = errors.StoreUnavailable(
        "MX behaviour: database unavailable (CannotConnectNowError: the database system is "
        "shutting down)"
    )
    store = UnreachableStore(failures=50, error=outage)

    await run_until_shared(store)

    said = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in said] == [
        f"could not share MX behaviour: {outage}; this process goes on with what it saw; "
        "trying again every 0.001 s",
        said[1].getMessage(),
    ]
    assert re.fullmatch(
        r"can share MX behaviour again, after 50 failed calls in [0-9.]+ s", said[1].getMessage()
    )
    assert all(r.exc_info is None for r in caplog.records)  # no traceback for an outage
    assert store.exchanges > 50


async def test_a_bug_keeps_its_traceback_once_however_often_it_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="app.engine.probes.behaviour")
    store = UnreachableStore(failures=20, error=ValueError("column mx_behaviour.busy is NaN"))

    await run_until_shared(store)

    assert [(r.levelno, r.getMessage()) for r in caplog.records][:1] == [
        (logging.ERROR, "could not share MX behaviour; trying again later")
    ]
    assert caplog.records[0].exc_info is not None
    assert "ValueError: column mx_behaviour.busy is NaN" in caplog.text
    assert len(caplog.records) == 2  # and "can share MX behaviour again, after 20 ..."
