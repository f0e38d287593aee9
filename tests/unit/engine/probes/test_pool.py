"""The session pool through its seam: an opener whose sessions answer from a script, so
batching, budgets and the learnt connection limit are pinned without sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from app.engine import errors
from app.engine.probes.limits import LocalMxLimiter
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
