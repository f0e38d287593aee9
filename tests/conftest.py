"""Fixtures shared by every tier: a clean environment, a real PostgreSQL, the simulated world."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db import embedded
from app.settings import Settings
from app.simulator import World, standard_world

pytest_plugins: list[str] = ["tests.fixtures.database"]


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray MXPROBE_* variable changes what a test sees."""
    for name in list(os.environ):
        if name.startswith("MXPROBE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """DATABASE_URL when given, else an embedded PostgreSQL started for this test session."""
    given = os.environ.get("DATABASE_URL")
    if given:
        return given
    data_dir: Path = tmp_path_factory.mktemp("pg")
    return embedded.start(data_dir, cleanup="delete")


@pytest.fixture(scope="session")
def session_world() -> Iterator[World]:
    """The standard simulated mail world, shared by the tests that only read from it."""
    world = standard_world(greylist_seconds=1.0, tarpit_seconds=30.0)
    with world:
        yield world
        assert world.total_data_commands() == 0, "a fake MX received DATA"


@pytest.fixture
def world(session_world: World) -> Iterator[World]:
    """The shared world with fresh logs, and no greylisting triplet remembered from before."""
    session_world.reset_recorders()
    session_world.reset_greylists()
    yield session_world
    assert session_world.total_data_commands() == 0, "a fake MX received DATA"
    session_world.reset_greylists()


def world_settings(world: World, **overrides: object) -> Settings:
    """Settings that point the engine at the simulated world (and only at it)."""
    values: dict[str, object] = {
        "dns_nameservers": (world.nameserver,),
        "smtp_ports": (world.smtp_port,),
        "allow_private_mx": True,
        "hello_name": "probe.mxprobe.test",
        "from_email": "verify@mxprobe.test",
        "connect_timeout": 2.0,
        "smtp_timeout": 2.0,
        "dns_timeout": 1.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def world_env(world: World) -> dict[str, str]:
    """The same, as environment variables for subprocesses (workers, `mxprobe` commands)."""
    return {
        "MXPROBE_DNS_NAMESERVERS": world.nameserver,
        "MXPROBE_SMTP_PORTS": str(world.smtp_port),
        "MXPROBE_ALLOW_PRIVATE_MX": "true",
        "MXPROBE_HELLO_NAME": "probe.mxprobe.test",
        "MXPROBE_FROM_EMAIL": "verify@mxprobe.test",
        "MXPROBE_CONNECT_TIMEOUT": "2",
        "MXPROBE_SMTP_TIMEOUT": "2",
        "MXPROBE_DNS_TIMEOUT": "1",
    }
