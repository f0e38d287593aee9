"""A large simulated world for benchmarks, and the addresses to verify against it.

`bench_world` spreads `domains` domains over `mx_hosts` MX hosts (domain i → host i % mx_hosts)
on 127.1.0.x, each host allowing `max_connections` simultaneous connections and answering
after `latency` seconds. `bench_addresses` lists, for the same arguments, `mailboxes_per_domain`
addresses per domain, about 90% of them existing, plus a few addresses on two catch-all
domains, each with the verdict (Reacher's ``is_reachable``) a correct verifier must reach.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from enum import StrEnum

from app.simulator.behaviours import Behaviour
from app.simulator.world import World

__all__ = ["BenchAddress", "Expected", "bench_addresses", "bench_world"]

CATCH_ALL_DOMAINS = 2
CATCH_ALL_HOST = "mx-catchall.bench.test"
FIRST_IP = ipaddress.IPv4Address("127.1.0.1")


class Expected(StrEnum):
    """Reacher's ``is_reachable`` for an address of the bench world."""

    SAFE = "safe"
    INVALID = "invalid"
    RISKY = "risky"
    """On a catch-all domain."""


@dataclass(frozen=True)
class BenchAddress:
    email: str
    expected: Expected
    mx_host: str


def domain_name(index: int) -> str:
    return f"d{index:04d}.bench.test"


def mx_host_name(index: int) -> str:
    return f"mx{index:03d}.bench.test"


def catch_all_domain_name(index: int) -> str:
    return f"catchall{index}.bench.test"


def valid_per_domain(mailboxes_per_domain: int) -> int:
    """How many of a domain's `mailboxes_per_domain` addresses exist (about 90%)."""
    return mailboxes_per_domain - mailboxes_per_domain // 10


def bench_world(
    *,
    domains: int = 100,
    mx_hosts: int = 10,
    mailboxes_per_domain: int = 100,
    latency: float = 0.05,
    max_connections: int = 5,
    smtp_port: int | None = None,
    dns_port: int | None = None,
) -> World:
    """Build (not start) the bench world."""
    if domains < 1 or mx_hosts < 1:
        raise ValueError("domains and mx_hosts must be >= 1")
    world = World(smtp_port=smtp_port, dns_port=dns_port)
    behaviour = Behaviour(latency=latency, max_connections=max_connections)
    for index in range(mx_hosts):
        world.add_mx(mx_host_name(index), ip=str(FIRST_IP + index), behaviour=behaviour)
    valid = valid_per_domain(mailboxes_per_domain)
    for index in range(domains):
        world.add_domain(
            domain_name(index),
            mx=[(10, mx_host_name(index % mx_hosts))],
            mailboxes=[f"user{k}" for k in range(valid)],
        )
    catch_all = Behaviour(latency=latency, max_connections=max_connections, catch_all=True)
    world.add_mx(CATCH_ALL_HOST, ip=str(FIRST_IP + mx_hosts), behaviour=catch_all)
    for index in range(CATCH_ALL_DOMAINS):
        world.add_domain(catch_all_domain_name(index), mx=[(10, CATCH_ALL_HOST)])
    return world


def bench_addresses(
    *, domains: int = 100, mx_hosts: int = 10, mailboxes_per_domain: int = 100, seed: int = 0
) -> list[BenchAddress]:
    """The addresses to verify against `bench_world` built with the same arguments.

    Shuffled with `seed`, so that consecutive addresses hit different MX hosts.
    """
    addresses: list[BenchAddress] = []
    valid = valid_per_domain(mailboxes_per_domain)
    for index in range(domains):
        domain, host = domain_name(index), mx_host_name(index % mx_hosts)
        addresses += [BenchAddress(f"user{k}@{domain}", Expected.SAFE, host) for k in range(valid)]
        addresses += [
            BenchAddress(f"ghost{k}@{domain}", Expected.INVALID, host)
            for k in range(mailboxes_per_domain - valid)
        ]
    per_catch_all = max(1, mailboxes_per_domain // 10)
    for index in range(CATCH_ALL_DOMAINS):
        domain = catch_all_domain_name(index)
        addresses += [
            BenchAddress(f"user{k}@{domain}", Expected.RISKY, CATCH_ALL_HOST)
            for k in range(per_catch_all)
        ]
    random.Random(seed).shuffle(addresses)
    return addresses
