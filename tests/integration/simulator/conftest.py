"""Fixtures for testing the simulated world itself, with stdlib and dnslib clients only."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Iterable, Iterator

import pytest
from dnslib import DNSRecord

from app.simulator import Behaviour, World, standard_world

MakeWorld = Callable[..., World]
MxWorld = Callable[..., World]
Connect = Callable[..., smtplib.SMTP]
Query = Callable[..., DNSRecord]

MX_HOST = "mx.example.test"
MX_IP = "127.0.0.10"


@pytest.fixture
def make_world() -> Iterator[MakeWorld]:
    """`make_world(**World kwargs)`: an unstarted World, stopped after the test."""
    worlds: list[World] = []

    def make(**kwargs: object) -> World:
        world = World(**kwargs)  # type: ignore[arg-type]
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.stop()


@pytest.fixture
def mx_world(make_world: MakeWorld) -> MxWorld:
    """`mx_world(behaviour, mailboxes=...)`: a started world with one MX host
    (mx.example.test on 127.0.0.10) serving example.test."""

    def make(
        behaviour: Behaviour = Behaviour(),  # noqa: B008
        *,
        mailboxes: Iterable[str] = ("alice",),
    ) -> World:
        world = make_world()
        world.add_mx(MX_HOST, ip=MX_IP, behaviour=behaviour)
        world.add_domain("example.test", mx=[(10, MX_HOST)], mailboxes=mailboxes)
        world.start()
        return world

    return make


@pytest.fixture
def connect() -> Iterator[Connect]:
    """`connect(world, host, timeout=5)`: an smtplib client connected to that MX host
    (banner read, no EHLO yet); closed after the test."""
    clients: list[smtplib.SMTP] = []

    def open_client(world: World, host: str = MX_HOST, *, timeout: float = 5.0) -> smtplib.SMTP:
        client = smtplib.SMTP(
            world.mx_ip(host), world.smtp_port, local_hostname="client.test", timeout=timeout
        )
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
def query() -> Query:
    """`query(world, name, qtype="MX", tcp=False, timeout=2)`: the parsed DNS reply."""

    def ask(
        world: World, name: str, qtype: str = "MX", *, tcp: bool = False, timeout: float = 2.0
    ) -> DNSRecord:
        packet = DNSRecord.question(name, qtype).send(
            world.dns_ip, world.dns_port, tcp=tcp, timeout=timeout
        )
        return DNSRecord.parse(packet)

    return ask


@pytest.fixture(scope="module")
def standard_module() -> Iterator[World]:
    world = standard_world(greylist_seconds=0.3, tarpit_seconds=0.3)
    with world:
        yield world


@pytest.fixture
def std(standard_module: World) -> World:
    """The standard world with short greylisting and tarpit, recorders and greylists reset."""
    standard_module.reset_recorders()
    standard_module.reset_greylists()
    return standard_module


def wait_until(condition: Callable[[], bool], *, timeout: float = 2.0) -> None:
    """Poll until the server thread has caught up (e.g. noticed a closed connection)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


@pytest.fixture
def settled() -> Callable[..., None]:
    return wait_until
