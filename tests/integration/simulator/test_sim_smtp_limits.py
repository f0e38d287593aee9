"""Connection limits, invalid-recipient budgets, tarpits and latency."""

from __future__ import annotations

import asyncio
import smtplib
import threading
import time

import pytest

from app.simulator import Behaviour, World


async def test_peak_connections_counts_simultaneous_sessions(mx_world, settled):
    world = mx_world(Behaviour())
    everyone_connected = threading.Barrier(4, timeout=5)

    def session() -> int:
        with smtplib.SMTP(world.mx_ip("mx.example.test"), world.smtp_port, timeout=5) as client:
            everyone_connected.wait()
            client.ehlo("client.test")
            client.mail("probe@client.test")
            return client.rcpt("alice@example.test")[0]

    codes = await asyncio.gather(*(asyncio.to_thread(session) for _ in range(4)))
    assert codes == [250] * 4
    recorder = world.recorder("mx.example.test")
    settled(lambda: recorder.active == 0)
    assert recorder.peak_connections == 4
    assert recorder.connections == 4


def test_connections_past_the_limit_get_421(connect, mx_world, settled):
    world = mx_world(Behaviour(max_connections=2))
    recorder = world.recorder("mx.example.test")
    first, _second = connect(world), connect(world)
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        connect(world)
    assert refused.value.smtp_code == 421
    assert refused.value.smtp_error == b"4.7.0 Too many connections"
    assert recorder.refused_421 == 1
    assert recorder.peak_connections == 3  # what the client did, the refused one included
    first.quit()
    settled(lambda: recorder.active == 1)
    third = connect(world)
    third.ehlo()
    assert third.noop()[0] == 250


def test_standard_busy_host_allows_one_connection(connect, std: World):
    connect(std, "mx.busy.test")
    with pytest.raises(smtplib.SMTPConnectError):
        connect(std, "mx.busy.test")
    assert std.recorder("mx.busy.test").refused_421 == 1


def test_too_many_invalid_recipients_get_421_and_a_hang_up(connect, std: World):
    client = connect(std, "mx.strict.test")
    client.ehlo()
    client.mail("probe@client.test")
    assert client.rcpt("nobody1@strict.test")[0] == 550
    assert client.rcpt("alice@strict.test")[0] == 250  # known ones do not count
    assert client.rcpt("nobody2@strict.test")[0] == 550
    assert client.rcpt("nobody3@strict.test") == (421, b"4.7.0 Too many invalid recipients")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    assert std.recorder("mx.strict.test").refused_421 == 1


def test_invalid_recipient_budget_is_per_session(connect, std: World):
    for _ in range(2):
        client = connect(std, "mx.strict.test")
        client.ehlo()
        client.mail("probe@client.test")
        assert client.rcpt("nobody1@strict.test")[0] == 550
        assert client.rcpt("nobody2@strict.test")[0] == 550
        client.quit()


def test_tarpit_delays_the_banner(std: World):
    ip = std.mx_ip("mx.tarpit.test")
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        smtplib.SMTP(ip, std.smtp_port, timeout=0.1)
    started = time.monotonic()
    with smtplib.SMTP(ip, std.smtp_port, timeout=5) as client:
        assert time.monotonic() - started >= 0.3
        client.ehlo("client.test")
        client.mail("probe@client.test")
        assert client.rcpt("alice@tarpit.test")[0] == 250


def session_seconds(world: World, host: str) -> float:
    started = time.monotonic()
    with smtplib.SMTP(world.mx_ip(host), world.smtp_port, timeout=5) as client:
        client.ehlo("client.test")  # multi-line: one reply, one delay
        client.noop()
    return time.monotonic() - started


def test_latency_comes_before_every_reply(make_world):
    world = make_world()
    world.add_mx("fast.example.test", ip="127.0.0.10")
    world.add_mx("slow.example.test", ip="127.0.0.11", behaviour=Behaviour(latency=0.1))
    world.add_domain("example.test", mx=[(10, "fast.example.test"), (20, "slow.example.test")])
    world.start()
    slow = session_seconds(world, "slow.example.test")  # banner, EHLO, NOOP, QUIT
    assert 0.4 <= slow < 1.5
    assert session_seconds(world, "fast.example.test") < 0.2
    assert world.recorder("slow.example.test").round_trips == 4


def test_standard_slow_host_is_slow(std: World):
    assert session_seconds(std, "mx.slow.test") >= 0.2
