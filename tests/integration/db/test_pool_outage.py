"""The session pool rides out an outage of the database behind its MX limiter: PostgreSQL is
stopped under a worker's checks (the real `PostgresMxLimiter`, the real opener, a simulated
MX that refuses a connection past the limit), for longer than a recipient waits for a slot.

Before, the limiter's failed reconnection (`asyncpg.connect` refused, from `OwnConnection._own`)
went out of `SessionPool._hire` and `_serve` and ended them ("Task exception was never
retrieved"). Now: every address gets one answer, the right one; no task dies; the MX never
sees more sessions than the limit; the group grows again once PostgreSQL is back; and the log
says so in two lines."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from app.db.mx_limits import PostgresMxLimiter
from app.engine import (
    CheckRequest,
    MxBehaviour,
    NoSlot,
    ProbeOpener,
    Resolver,
    SessionPool,
    Verifier,
)
from app.settings import Settings
from app.simulator import World
from tests.conftest import world_settings
from tests.fixtures.bulk import Crowd
from tests.fixtures.restartable_postgres import RestartablePostgres, restartable_postgres

__all__ = ["restartable_postgres"]  # the fixture, for this module's tests

CROWD = Crowd(mx_hosts=1, limit=2, domains=10, per_domain=40, invalid_every=5)
LIMIT = CROWD.limit
DOWN = 2.0  # seconds; with the limiter's grace after reconnecting, more than the slot wait


@pytest.fixture
def crowd() -> Iterator[World]:
    """One MX that refuses a connection past `LIMIT` with 421; a Postfix-like hard error limit
    well above the sessions' own."""
    with CROWD.world(latency=0.02, max_invalid_rcpts=50) as world:
        yield world


@contextlib.asynccontextmanager
async def a_process(settings: Settings, url: str) -> AsyncIterator[Verifier]:
    """A worker process's verifier, as `app.verifiers.open_verifier` builds it, sharing the
    MX limits through the database at `url`."""
    config = settings.probe_config()
    limiter = await PostgresMxLimiter.connect(url, per_mx=LIMIT, total=100)
    resolver = Resolver(settings.dns_config())
    book = MxBehaviour()
    pool = SessionPool(
        opener=ProbeOpener(config, book),
        limiter=limiter,
        idle_timeout=config.session_idle_timeout,
        slot_wait=config.slot_wait,
        max_waiters=2 * LIMIT,  # as worker/main.py sets it
        behaviour=book,
    )
    try:
        yield Verifier(config, resolver=resolver, pool=pool, raise_no_slot=True)
    finally:
        await pool.close()
        await resolver.close()
        await limiter.close()


@dataclass
class Tasks:
    """A worker's tasks on the addresses left `todo`: `concurrency` at a time; a task told
    `NoSlot` is deferred, and comes back a moment later (any worker's)."""

    todo: deque[str]
    verdicts: dict[str, list[str]] = field(default_factory=dict)
    deferred: int = 0
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    wanted: int = 0  # `answered` is set once this many addresses have their verdict

    async def run(self, verifier: Verifier, *, concurrency: int) -> None:
        async def task() -> None:
            while self.todo:
                address = self.todo.popleft()
                try:
                    checked = await verifier.verify(CheckRequest(to_email=address))
                except NoSlot:
                    self.deferred += 1
                    self.todo.append(address)
                    await asyncio.sleep(0.05)
                else:
                    verdict = checked.output.is_reachable.value
                    self.verdicts.setdefault(address, []).append(verdict)
                    if len(self.verdicts) >= self.wanted:
                        self.answered.set()

        await asyncio.gather(*(task() for _ in range(concurrency)))

    async def until_answered(self, count: int) -> None:
        self.answered.clear()
        self.wanted = count
        if len(self.verdicts) < count:
            await self.answered.wait()


async def test_two_workers_ride_out_a_database_outage_and_take_their_sessions_back(
    restartable_postgres: RestartablePostgres, crowd: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.engine.probes.pool")
    unretrieved: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: unretrieved.append(context))
    settings = world_settings(crowd, slot_wait=1.5, session_idle_timeout=5.0)
    expected = {
        email: [verdict] for email, verdict in zip(CROWD.emails, CROWD.expected, strict=True)
    }
    tasks = Tasks(deque(expected))
    [mx] = crowd.recorders.values()
    peaks: dict[str, int] = {}

    async def outage() -> None:
        await tasks.until_answered(len(expected) // 3)
        peaks["before"] = mx.peak_connections
        await asyncio.to_thread(restartable_postgres.stop)
        await asyncio.sleep(DOWN)
        await asyncio.to_thread(restartable_postgres.start)
        crowd.reset_recorders()  # the peak: of the sessions open now, and those opened after
        await tasks.until_answered(len(expected) - 20)
        peaks["after"] = mx.peak_connections

    url = restartable_postgres.url
    async with a_process(settings, url) as first, a_process(settings, url) as second:
        await asyncio.wait_for(
            asyncio.gather(
                tasks.run(first, concurrency=10), tasks.run(second, concurrency=10), outage()
            ),
            timeout=120,
        )
    gc.collect()
    await asyncio.sleep(0)

    assert tasks.verdicts == expected  # each address answered once, rightly
    assert tasks.deferred > 0  # some waited for longer than the slot wait: told to try again
    assert peaks["before"] <= LIMIT
    assert peaks["after"] == LIMIT  # taken back (by both), and never exceeded
    assert crowd.recorders[mx.host].refused_421 == 0
    assert unretrieved == []  # no "Task exception was never retrieved"
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("app.engine")]
    assert [message.split(":")[0] for _, message in said] == [
        "could not reach the MX limiter",
        "could not reach the MX limiter",
        said[2][1].split(":")[0],
        said[3][1].split(":")[0],
    ]  # one line each, from each of the two processes
    assert all(m.startswith("can reach the MX limiter again") for _, m in said[2:])
    assert all(level == logging.WARNING for level, _ in said)
    assert all(r.exc_info is None for r in caplog.records)
