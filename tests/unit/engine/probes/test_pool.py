"""The session pool through its seam: an opener whose sessions answer from a script, so
batching, budgets and the learnt connection limit are pinned without sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from app.engine import errors
from app.engine.probes.limits import Lease, LocalMxLimiter, NoSlot
from app.engine.probes.pool import MAX_REFUSALS, ConnectFailed, Route, SessionPool
from app.engine.probes.smtp import Flight, Reply
from app.engine.rules.providers import Provider, ProviderPolicy, policy_for

ROUTE = Route(
    mx_host="mx.example.test",
    address="192.0.2.1",
    port=25,
    hello_name="probe.test",
    from_email="verify@probe.test",
    proxy=None,
    limit_key="mx.example.test",
)
POLICY = ProviderPolicy(
    max_rcpts_per_session=10_000,
    one_domain_per_transaction=False,
    max_invalid_rcpts_per_session=10_000,
    skip_catch_all=False,
)


@dataclass
class ScriptedServer:
    """Answers RCPT TO `ok*` with 250 and anything else with 550 5.1.1, after `latency`;
    refuses a connection with 421 past `max_connections` open at once."""

    max_connections: int | None = None
    max_errors: int | None = None  # per session, then 421 and hang up (Postfix's hard limit)
    latency: float = 0.0
    pipelining: bool = True
    open: int = 0
    peak: int = 0
    connects: int = 0
    refused: int = 0
    writes: list[list[str]] = field(default_factory=list)

    async def opener(self, route: Route) -> ScriptedSession:
        self.connects += 1
        if self.max_connections is not None and self.open >= self.max_connections:
            self.refused += 1
            raise errors.SmtpProtocolError(
                "banner: 421 4.7.0 Too many connections", code=421, reply="Too many connections"
            )
        self.open += 1
        self.peak = max(self.peak, self.open)
        return ScriptedSession(self, route)

    def answer(self, line: str) -> Reply:
        if line.startswith("RCPT TO:<ok"):
            return Reply(250, "2.1.5 Ok", 0)
        if line.startswith("RCPT"):
            return Reply(550, "5.1.1 User unknown", 0)
        return Reply(250, "2.0.0 Ok", 0)


class ScriptedSession:
    smtputf8 = False

    def __init__(self, server: ScriptedServer, route: Route) -> None:
        self.server = server
        self.mx_host = route.mx_host
        self.port = route.port
        self.pipelining = server.pipelining
        self.is_open = True

    def mail_from(self, *, utf8: bool) -> str:
        return "MAIL FROM:<verify@probe.test>"

    error_count = 0

    async def exchange(self, lines: Sequence[str]) -> Flight:
        self.server.writes.append(list(lines))
        await asyncio.sleep(self.server.latency)
        replies = []
        for line in lines:
            if self.server.max_errors is not None and self.error_count >= self.server.max_errors:
                replies.append(Reply(421, "4.7.0 Error: too many errors", 0))
                await self.close()
                return Flight(replies, errors.SmtpDisconnected("the server hung up"))
            reply = self.server.answer(line)
            self.error_count += reply.code >= 500
            replies.append(reply)
        return Flight(replies)

    async def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self.server.open -= 1


def pool_for(server: ScriptedServer, *, per_mx: int = 5, **options: float) -> SessionPool:
    limiter = LocalMxLimiter(per_mx=per_mx, total=100)
    return SessionPool(opener=server.opener, limiter=limiter, **options)


async def ask_all(
    pool: SessionPool, recipients: Sequence[str], policy: ProviderPolicy = POLICY
) -> list[int]:
    async def one(recipient: str) -> int:
        answer = await pool.ask(
            ROUTE, policy=policy, recipient=recipient, domain="example.test", catch_all_probe=None
        )
        return answer.reply.code

    try:
        return list(await asyncio.gather(*(one(r) for r in recipients)))
    finally:
        await pool.close()


async def test_one_pipelined_session_carries_a_dozen_recipients_asked_at_once() -> None:
    server = ScriptedServer(latency=0.02)
    recipients = [f"ok{i}@example.test" for i in range(6)] + [
        f"no{i}@example.test" for i in range(6)
    ]

    codes = await ask_all(pool_for(server), recipients)

    assert codes == [250] * 6 + [550] * 6
    assert server.connects == 1
    assert len(server.writes) <= 2  # MAIL FROM and every RCPT in one or two writes


async def test_a_server_without_pipelining_gets_one_command_per_write() -> None:
    server = ScriptedServer(pipelining=False)

    codes = await ask_all(pool_for(server), ["ok1@example.test", "no1@example.test"])

    assert codes == [250, 550]
    assert all(len(write) == 1 for write in server.writes)


async def test_sessions_grow_only_while_recipients_wait_longer_than_a_flight() -> None:
    server = ScriptedServer(latency=0.05)

    codes = await ask_all(pool_for(server, per_mx=4), [f"ok{i}@example.test" for i in range(300)])

    assert codes == [250] * 300
    assert 1 < server.peak <= 4


async def test_a_421_at_connect_sets_the_budget_to_the_sessions_open_then() -> None:
    server = ScriptedServer(latency=0.05, max_connections=2)
    limiter = LocalMxLimiter(per_mx=5, total=100)
    pool = SessionPool(opener=server.opener, limiter=limiter, busy_cooldown=60)

    codes = await ask_all(pool, [f"ok{i}@example.test" for i in range(400)])

    assert codes == [250] * 400  # the refused recipients waited for a session
    assert server.peak == 2
    assert server.refused == 1  # learnt once, kept for the cool-down
    assert limiter.budget(ROUTE.limit_key) == 2


async def test_recipients_refused_at_connect_wait_for_the_connection_to_free() -> None:
    server = ScriptedServer(max_connections=1, open=1)  # somebody else holds the only one

    async def let_go() -> None:
        await asyncio.sleep(0.3)
        server.open -= 1

    freed = asyncio.create_task(let_go())
    codes = await ask_all(pool_for(server), ["ok1@example.test", "no1@example.test"])
    await freed

    assert codes == [250, 550]
    assert server.refused >= 1


async def test_a_route_refused_every_time_fails_after_a_few_tries() -> None:
    server = ScriptedServer(max_connections=0)

    with pytest.raises(ConnectFailed) as failed:
        await ask_all(pool_for(server), ["ok1@example.test"])

    assert isinstance(failed.value.error, errors.SmtpProtocolError)
    assert failed.value.error.code == 421
    assert server.connects == MAX_REFUSALS


async def test_consumer_outlook_gets_one_recipient_per_session() -> None:
    server = ScriptedServer()
    outlook = policy_for(Provider.MICROSOFT_B2C)

    codes = await ask_all(pool_for(server, idle_timeout=5.0), ["ok1@x.test", "ok2@x.test"], outlook)

    assert codes == [250, 250]
    assert server.connects == 2
    assert server.peak == 1


async def test_the_unknown_recipient_budget_caps_a_flight_and_a_session() -> None:
    server = ScriptedServer()
    policy = ProviderPolicy(
        max_rcpts_per_session=100,
        one_domain_per_transaction=False,
        max_invalid_rcpts_per_session=3,
        skip_catch_all=False,
    )

    codes = await ask_all(pool_for(server), [f"no{i}@example.test" for i in range(7)], policy)

    assert codes == [550] * 7
    rcpts = [sum(line.startswith("RCPT") for line in write) for write in server.writes]
    assert max(rcpts) <= 3
    assert server.connects == 3


async def test_an_idle_session_gives_its_slot_to_another_process_that_waits() -> None:
    """Two processes (two pools, one shared budget) and a server that takes one connection:
    the second does not wait out the first's idle timeout, and never opens a second one."""
    server = ScriptedServer(max_connections=1)
    shared = LocalMxLimiter(per_mx=5, total=100)
    first = SessionPool(opener=server.opener, limiter=shared, idle_timeout=30)
    second = SessionPool(opener=server.opener, limiter=shared, idle_timeout=30)
    try:
        assert await ask_one(first, "ok1@example.test") == 250  # its session now idles
        started = asyncio.get_running_loop().time()
        assert await ask_one(second, "ok2@example.test") == 250
        waited = asyncio.get_running_loop().time() - started
    finally:
        await first.close()
        await second.close()

    assert waited < 5  # not the 30 s idle timeout
    assert (server.connects, server.peak, server.refused) == (2, 1, 0)


async def ask_one(pool: SessionPool, recipient: str) -> int:
    answer = await pool.ask(
        ROUTE, policy=POLICY, recipient=recipient, domain="example.test", catch_all_probe=None
    )
    return answer.reply.code


async def test_a_server_that_hangs_up_after_a_few_errors_teaches_the_session_budget() -> None:
    server = ScriptedServer(max_errors=3)
    recipients = [f"no{i}@example.test" for i in range(12)] + ["ok1@example.test"]
    policy = ProviderPolicy(
        max_rcpts_per_session=100,
        one_domain_per_transaction=False,
        max_invalid_rcpts_per_session=5,
        skip_catch_all=False,
    )

    codes = await ask_all(pool_for(server), recipients, policy)

    assert codes == [550] * 12 + [250]  # every recipient answered, none lost to the hang-ups
    rcpts = [sum(line.startswith("RCPT") for line in write) for write in server.writes]
    assert max(rcpts[1:]) <= 2  # after the first hang-up, fewer than the server takes


class FlakyLimiter(LocalMxLimiter):
    """A `LocalMxLimiter` whose store goes away when told: then every call raises `failure`,
    but `wanted` (nobody) and `release` (the server dropped the slot with the session), as
    `PostgresMxLimiter` does during a database outage. `every_call`: those two raise too."""

    def __init__(self, *, per_mx: int, every_call: bool = False) -> None:
        super().__init__(per_mx=per_mx, total=100)
        self.failure: Exception | None = None
        self.every_call = every_call
        self.failed = 0

    def _check(self) -> None:
        if self.failure is not None:
            self.failed += 1
            raise self.failure

    async def try_acquire(self, key: str, *, waiting: bool = True) -> Lease | None:
        self._check()
        return await super().try_acquire(key, waiting=waiting)

    async def grow(self, key: str) -> None:
        self._check()
        await super().grow(key)

    async def refused(self, key: str, *, seconds: float) -> None:
        self._check()
        await super().refused(key, seconds=seconds)

    async def error_limit(self, key: str) -> int | None:
        self._check()
        return await super().error_limit(key)

    async def learn_error_limit(self, key: str, limit: int) -> None:
        self._check()
        await super().learn_error_limit(key, limit)

    async def wanted(self) -> set[str]:
        if self.failure is None:
            return await super().wanted()
        if self.every_call:
            self._check()
        return set()

    async def release(self, lease: Lease) -> None:
        if self.every_call:
            self._check()
        await super().release(lease)


OUTAGE = errors.StoreUnavailable(
    "MX limits: database unavailable (ConnectionRefusedError: [Errno 111] Connect call failed)"
)


@dataclass
class Worker:
    """What a worker's tasks do with the pool: `concurrency` of them, each asking for one
    recipient at a time, with its domain's catch-all probe; one told `NoSlot` is deferred and
    asked again a moment later."""

    pool: SessionPool
    policy: ProviderPolicy = POLICY
    concurrency: int = 10
    answers: dict[str, list[int]] = field(default_factory=dict)
    deferred: int = 0
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    wanted: int = 0  # `answered` is set once this many recipients have their answer

    async def until_answered(self, count: int) -> None:
        self.answered.clear()
        self.wanted = count
        if len(self.answers) < count:
            await self.answered.wait()

    async def run(self, recipients: Sequence[str]) -> None:
        todo = deque(recipients)

        async def task() -> None:
            while todo:
                recipient = todo.popleft()
                domain = recipient.partition("@")[2]
                try:
                    answer = await self.pool.ask(
                        ROUTE,
                        policy=self.policy,
                        recipient=recipient,
                        domain=domain,
                        catch_all_probe=f"probe@{domain}",
                    )
                except NoSlot:
                    self.deferred += 1
                    todo.append(recipient)
                    await asyncio.sleep(0.01)
                else:
                    self.answers.setdefault(recipient, []).append(answer.reply.code)
                    if len(self.answers) >= self.wanted:
                        self.answered.set()

        await asyncio.gather(*(task() for _ in range(self.concurrency)))


def unretrieved_task_errors() -> list[dict[str, object]]:
    """Install (on the running loop) a handler that collects what asyncio would log, such as
    "Task exception was never retrieved"."""
    seen: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: seen.append(context))
    return seen


@pytest.mark.parametrize(
    ("failure", "every_call"),
    [(OUTAGE, False), (RuntimeError("a bug in the limiter"), True)],
    ids=["outage", "bug"],
)
async def test_a_limiter_that_fails_for_a_while_loses_no_recipient_and_no_task(
    failure: Exception, every_call: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The database behind the limiter goes away while a worker's tasks use the pool (the
    `--down 5` benchmark found the pool's tasks dead, and a group left on one session for the
    rest of the job): every recipient is answered once, no background task dies, the group
    grows again once the limiter is back, and the log has one line for each change."""
    caplog.set_level(logging.INFO, logger="app.engine.probes.pool")
    unretrieved = unretrieved_task_errors()
    server = ScriptedServer(latency=0.02)
    limiter = FlakyLimiter(per_mx=4, every_call=every_call)
    pool = SessionPool(opener=server.opener, limiter=limiter, max_waiters=4, slot_wait=0.5)
    # Sessions of 40 recipients: new ones open all along, so the limiter is asked all along.
    worker = Worker(pool, dataclasses.replace(POLICY, max_rcpts_per_session=40))
    recipients = [f"{'ok' if i % 5 else 'no'}{i}@d{i % 25}.example.test" for i in range(600)]
    peak_after: list[int] = []

    async def outage() -> None:
        await worker.until_answered(100)
        limiter.failure = failure
        await asyncio.sleep(1.0)  # twice the slot wait: some recipients are told to try again
        limiter.failure = None
        server.peak = server.open  # from now on: does the group grow again?
        await worker.until_answered(len(recipients) - 20)
        peak_after.append(server.peak)

    try:
        await asyncio.wait_for(asyncio.gather(worker.run(recipients), outage()), timeout=60)
    finally:
        await pool.close()
    gc.collect()
    await asyncio.sleep(0)

    assert limiter.failed > 0
    assert {r: codes for r, codes in worker.answers.items()} == {
        r: [250 if r.startswith("ok") else 550] for r in recipients
    }
    assert peak_after[0] >= 2  # grown again past one session
    assert limiter.in_use(ROUTE.limit_key) == 0  # every slot given back, none lost to a failure
    assert unretrieved == []
    said = [r for r in caplog.records if r.name == "app.engine.probes.pool"]
    assert [re.sub(r"[:;].*| in [0-9.]+ s$", "", r.message) for r in said] == [
        "could not reach the MX limiter",
        f"can reach the MX limiter again, after {limiter.failed} failed calls",
    ]
    assert (said[0].exc_info is not None) == (failure is not OUTAGE)  # a bug keeps its traceback
    assert all(r.exc_info is None for r in said[1:])


class FlakyRates:
    """A `RateLimiter` with no limit, whose store is away while `failure` is set."""

    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.booked = 0

    async def reserve(self, key: str, count: int = 1) -> float:
        if self.failure is not None:
            raise self.failure
        self.booked += count
        return 0.0


async def test_recipients_wait_for_the_send_rates_to_come_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, rates = ScriptedServer(), FlakyRates()
    rates.failure = OUTAGE
    pool = SessionPool(
        opener=server.opener, limiter=LocalMxLimiter(per_mx=2, total=10), rates=rates, slot_wait=5
    )
    asyncio.get_running_loop().call_later(0.3, setattr, rates, "failure", None)

    codes = await ask_all(pool, ["ok1@example.test", "no1@example.test"])

    assert codes == [250, 550]
    assert rates.booked == 2  # nothing went out unbooked
    said = [r.getMessage() for r in caplog.records if r.name == "app.engine.probes.pool"]
    assert [m.split(":")[0] for m in said] == [
        "could not book MX send rates",
        said[1].split(":")[0],
    ]
    assert said[1].startswith("can book MX send rates again")


async def test_send_rates_away_for_longer_than_the_slot_wait_mean_try_again() -> None:
    server, rates = ScriptedServer(), FlakyRates()
    rates.failure = OUTAGE
    pool = SessionPool(
        opener=server.opener,
        limiter=LocalMxLimiter(per_mx=2, total=10),
        rates=rates,
        slot_wait=0.2,
    )

    with pytest.raises(NoSlot, match=re.escape("no send rate for mx.example.test")):
        await ask_all(pool, ["ok1@example.test"])

    assert not any(line.startswith("RCPT") for write in server.writes for line in write)
