"""The resolver against the standard world's DNS: what each answer means, and which error a
failure is, on asyncio's event loop and on uvloop's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import uvloop

from app.engine import DnsConfig, Resolver, errors
from app.engine.probes.dns import MxHost, MxLookup
from app.simulator import World
from app.verifiers import open_verifier
from tests.conftest import world_settings


def resolver_for(world: World, *, timeout: float = 1.0, tries: int = 2) -> Resolver:
    return Resolver(DnsConfig(nameservers=(world.nameserver,), timeout=timeout, tries=tries))


@pytest.mark.parametrize(
    ("domain", "lookup"),
    [
        ("normal.test", MxLookup(hosts=(MxHost(10, "mx.normal.test"),))),
        (
            "backup.test",
            MxLookup(hosts=(MxHost(10, "mx1.backup.test"), MxHost(20, "mx2.backup.test"))),
        ),
        ("NORMAL.test.", MxLookup(hosts=(MxHost(10, "mx.normal.test"),))),
        ("xn--bcher-kva.test", MxLookup(hosts=(MxHost(10, "mx.xn--bcher-kva.test"),))),
        ("nullmx.test", MxLookup(hosts=(), null_mx=True)),
        ("aonly.test", MxLookup(hosts=(MxHost(0, "aonly.test"),), implicit=True)),
        ("nomail.test", MxLookup(hosts=())),
        ("nowhere.test", MxLookup(hosts=(), exists=False)),
    ],
)
async def test_mx_lookups(world: World, domain: str, lookup: MxLookup):
    assert await resolver_for(world).mx(domain) == lookup


@pytest.mark.parametrize(
    ("host", "addresses"),
    [("mx.normal.test", ["127.0.0.10"]), ("nomail.test", []), ("mx.nowhere.test", [])],
)
async def test_addresses(world: World, host: str, addresses: list[str]):
    assert await resolver_for(world).addresses(host) == addresses


async def test_servfail_is_a_server_failure_and_not_asked_again(world: World):
    failure = r"DNS MX query for servfail\.test: .* answered SERVFAIL"
    with pytest.raises(errors.DnsServerFailure, match=failure):
        await resolver_for(world, tries=3).mx("servfail.test")

    assert world.dns_queries[("servfail.test", "MX")] == 1


async def test_no_answer_is_a_timeout(world: World):
    with pytest.raises(errors.DnsTimeout, match=r"DNS MX query for timeout\.test timed out"):
        await resolver_for(world, timeout=0.2, tries=2).mx("timeout.test")

    assert world.dns_queries[("timeout.test", "MX")] == 2


async def test_answers_are_cached_and_concurrent_lookups_share_one_query(world: World):
    resolver = resolver_for(world)

    first = await asyncio.gather(*(resolver.mx("slowdns.test") for _ in range(10)))
    again = await resolver.mx("slowdns.test")

    assert first == [again] * 10
    assert world.dns_queries[("slowdns.test", "MX")] == 1


async def test_the_settings_give_the_timeout_and_tries(world: World):
    settings = world_settings(world, dns_timeout=0.3, dns_tries=3)
    async with open_verifier(settings, shared_limits=False) as verifier:
        with pytest.raises(errors.DnsTimeout):
            await verifier.resolver.mx("timeout.test")

    assert world.dns_queries[("timeout.test", "MX")] == 3


async def lookups_on_the_running_loop(world: World) -> tuple[str, list[object]]:
    """The running loop's module, and what a few lookups gave (a lookup's error by type)."""
    resolver = resolver_for(world, timeout=1.0, tries=1)
    found: list[object] = [
        await resolver.mx("normal.test"),
        await resolver.mx("slowdns.test"),  # 0.8 s
        await resolver.addresses("mx.normal.test"),
        await resolver.mx("nowhere.test"),
    ]
    for failing in ("servfail.test", "timeout.test"):
        try:
            await resolver.mx(failing)
        except errors.DnsError as exc:
            found.append(type(exc))
    await resolver.close()
    return type(asyncio.get_running_loop()).__module__.split(".")[0], found


Runner = Callable[[Coroutine[Any, Any, tuple[str, list[object]]]], tuple[str, list[object]]]


@pytest.mark.parametrize(
    ("run", "loop"), [(asyncio.run, "asyncio"), (uvloop.run, "uvloop")], ids=["asyncio", "uvloop"]
)
def test_the_resolver_runs_on_asyncio_and_on_uvloop(world: World, run: Runner, loop: str):
    with ThreadPoolExecutor(1) as thread:  # a loop of its own, away from the tests' loop
        ran_on, found = thread.submit(run, lookups_on_the_running_loop(world)).result()

    assert ran_on == loop
    assert found == [
        MxLookup(hosts=(MxHost(10, "mx.normal.test"),)),
        MxLookup(hosts=(MxHost(10, "mx.normal.test"),)),
        ["127.0.0.10"],
        MxLookup(hosts=(), exists=False),
        errors.DnsServerFailure,
        errors.DnsTimeout,
    ]
