"""The simulated DNS answers a name after its latency, without holding up other names."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from dnslib import RCODE

from app.simulator import DomainKind, World


def timed(ask: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.monotonic()
    reply = ask(*args, **kwargs)
    return time.monotonic() - started, reply


@pytest.fixture
def slow_world(make_world: Callable[..., World]) -> World:
    """Every name answers in 0.2 s but far.test (1 s); mx.far.test keeps the world's."""
    world = make_world(dns_latency=0.2)
    world.add_mx("mx.far.test", ip="127.0.0.10")
    world.add_domain("far.test", mx=[(10, "mx.far.test")], dns_latency=1.0)
    world.add_domain("near.test", mx=[(10, "mx.far.test")])
    world.start()
    return world


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(
    ("name", "qtype", "latency"),
    [
        ("far.test", "MX", 1.0),
        ("far.test", "A", 1.0),
        ("near.test", "MX", 0.2),
        ("mx.far.test", "A", 0.2),
        ("nowhere.test", "MX", 0.2),
    ],
)
def test_a_name_is_answered_after_its_latency(
    query, slow_world: World, name: str, qtype: str, latency: float, tcp: bool
):
    elapsed, reply = timed(query, slow_world, name, qtype, tcp=tcp, timeout=5)

    assert reply.header.rcode in (RCODE.NOERROR, RCODE.NXDOMAIN)
    assert latency * 0.9 <= elapsed < latency + 2


def test_a_domain_can_answer_at_once_in_a_slow_world(query, make_world):
    world = make_world(dns_latency=3.0)
    world.add_domain("prompt.test", mx=[(10, "mx.prompt.test")], dns_latency=0)
    world.start()

    elapsed, reply = timed(query, world, "prompt.test", "MX", timeout=5)

    assert [str(rr.rdata) for rr in reply.rr] == ["10 mx.prompt.test."]
    assert elapsed < 1.5


def test_a_slow_name_holds_up_no_other(query, slow_world: World):
    with ThreadPoolExecutor(1) as pool:
        far = pool.submit(timed, query, slow_world, "far.test", "MX", timeout=5)
        time.sleep(0.05)  # far.test's query is in
        _, near = timed(query, slow_world, "near.test", "MX", timeout=5)

        assert not far.done()  # near.test was answered while far.test's reply was held back
        assert [str(rr.rdata) for rr in near.rr] == ["10 mx.far.test."]
        assert [str(rr.rdata) for rr in far.result()[1].rr] == ["10 mx.far.test."]


def test_stopping_drops_the_replies_still_held_back(query, make_world):
    world = make_world(dns_latency=30)
    world.add_domain("far.test", kind=DomainKind.NO_MAIL)
    world.start()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(query, world, "far.test", "MX", timeout=2)
        time.sleep(0.05)
        elapsed, _ = timed(world.stop)
        with pytest.raises(TimeoutError):
            pending.result()
    assert elapsed < 5  # not waiting for the 30 s reply


@pytest.mark.parametrize("latency", [-0.1, float("nan")])
def test_a_negative_latency_is_refused(latency: float):
    with pytest.raises(ValueError, match="dns_latency"):
        World(dns_latency=latency)
    with pytest.raises(ValueError, match="dns_latency"):
        World().add_domain("far.test", kind=DomainKind.NO_MAIL, dns_latency=latency)
