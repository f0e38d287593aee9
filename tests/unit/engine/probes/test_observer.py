"""What the session pool tells its `Observer`: sessions opening and closing, 421s and timeouts
at connect, round trips as the server saw them. Scripted sessions, no sockets."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from app.engine import Observer, errors
from app.engine.probes.limits import LocalMxLimiter
from app.engine.probes.pool import ConnectFailed, Route, SessionPool
from app.engine.probes.smtp import Flight
from tests.unit.engine.probes.test_pool import ROUTE, ScriptedServer, ScriptedSession, ask_all


@dataclass
class Recorder(Observer):
    seen: Counter[str] = field(default_factory=Counter)
    open: int = 0

    def session_opened(self, group: str) -> None:
        assert group == ROUTE.limit_key
        self.seen["opened"] += 1
        self.open += 1

    def session_closed(self, group: str) -> None:
        self.seen["closed"] += 1
        self.open -= 1
        assert self.open >= 0

    def connect_refused(self, group: str) -> None:
        self.seen["refused"] += 1

    def timed_out(self, group: str, *, stage: str) -> None:
        self.seen[f"timeout:{stage}"] += 1

    def round_trip(self, group: str, seconds: float) -> None:
        assert seconds >= 0
        self.seen["round trips"] += 1


def pool_for(server: ScriptedServer, recorder: Recorder) -> SessionPool:
    return SessionPool(
        opener=server.opener, limiter=LocalMxLimiter(per_mx=5, total=100), observer=recorder
    )


@pytest.mark.parametrize("pipelining", [True, False])
async def test_each_write_and_its_replies_is_one_round_trip(pipelining: bool) -> None:
    server = ScriptedServer(pipelining=pipelining)
    recorder = Recorder()

    await ask_all(pool_for(server, recorder), ["ok1@example.test", "no1@example.test"])

    assert recorder.seen["round trips"] == len(server.writes)
    assert len(server.writes) == (1 if pipelining else 3)  # MAIL FROM + 2 RCPT
    assert recorder.seen["opened"] == recorder.seen["closed"] == server.connects == 1
    assert recorder.open == 0


async def test_sessions_open_and_close_in_pairs_however_many_there_were() -> None:
    server = ScriptedServer(latency=0.05)
    recorder = Recorder()

    await ask_all(pool_for(server, recorder), [f"ok{i}@example.test" for i in range(200)])

    assert server.peak > 1
    assert recorder.seen["opened"] == recorder.seen["closed"] == server.connects
    assert recorder.open == 0


async def test_every_421_at_connect_is_told() -> None:
    server = ScriptedServer(latency=0.02, max_connections=1)
    recorder = Recorder()

    await ask_all(pool_for(server, recorder), [f"ok{i}@example.test" for i in range(100)])

    assert server.refused >= 1  # the second session, opened as recipients waited
    assert recorder.seen["refused"] == server.refused
    assert recorder.seen["opened"] == server.connects - server.refused


async def test_timeouts_say_whether_at_connect_or_on_a_command() -> None:
    recorder = Recorder()

    async def tarpit(route: Route) -> ScriptedSession:
        raise errors.SmtpTimeout("no banner", seconds=1.0)

    pool = SessionPool(
        opener=tarpit, limiter=LocalMxLimiter(per_mx=5, total=100), observer=recorder
    )
    with pytest.raises(ConnectFailed):
        await ask_all(pool, ["ok1@example.test"])
    assert recorder.seen == Counter({"timeout:connect": 1})

    class Silent(ScriptedSession):
        async def exchange(self, lines: object) -> Flight:
            await self.close()
            return Flight([], errors.SmtpTimeout("no reply", seconds=1.0))

    async def silent(route: Route) -> ScriptedSession:
        return Silent(ScriptedServer(), route)

    recorder = Recorder()
    pool = SessionPool(
        opener=silent, limiter=LocalMxLimiter(per_mx=5, total=100), observer=recorder
    )
    with pytest.raises(errors.SmtpTimeout):
        await ask_all(pool, ["ok1@example.test"])
    assert recorder.seen["timeout:command"] == 1
    assert recorder.seen["round trips"] == 0
