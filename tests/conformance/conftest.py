"""The conformance suite's mail world: four real Postfix instances (Debian's package) on
127.25.0.x, one port, and a DNS server on 127.25.0.53 for their domains.

- `plain`: a virtual mailbox domain with known users; unknown users get 550 5.1.1.
- `tls`: the same, offering STARTTLS (a trustme certificate, `smtpd_tls_loglevel = 1`).
- `single`: `smtpd_client_connection_count_limit = 1`; a second simultaneous connection from
  the same client gets 421 "too many connections" (and a warning in the log).
- `strict`: `smtpd_soft_error_limit = 2`, `smtpd_hard_error_limit = 3`: after its third error
  in a session, Postfix answers 421 "too many errors" and hangs up; from the second error on,
  each reply waits `smtpd_error_sleep_time` (1 s).

Two more domains point at `plain` and `tls` without being theirs: relay access denied.

After every test, each instance's sessions must all have ended, none may have sent DATA or
BDAT (the `disconnect from` line counts every command), and the queue must be empty. What
each test saw of each instance (sessions, refusals, hang-ups for too many errors) is printed
at the end of the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import pytest
import uvloop

from app.settings import Settings
from tests.fixtures.postfix import Instance, PostfixMail

DNS_IP = "127.25.0.53"
CONCURRENCY_REFUSED = "warning: Connection concurrency limit exceeded"
TOO_MANY_ERRORS = "too many errors after"

SINGLE_KNOWN = tuple(f"user{n:02}" for n in range(1, 9))
SINGLE_UNKNOWN = tuple(f"ghost{n:02}" for n in range(1, 5))

INSTANCES: tuple[tuple[str, str, tuple[str, ...], dict[str, str], bool], ...] = (
    ("plain", "127.25.0.1", ("alice", "bob", "carol"), {}, False),
    ("tls", "127.25.0.2", ("alice", "bob"), {}, True),
    ("single", "127.25.0.3", SINGLE_KNOWN, {"smtpd_client_connection_count_limit": "1"}, False),
    (
        "strict",
        "127.25.0.4",
        ("alice", "bob"),
        {"smtpd_soft_error_limit": "2", "smtpd_hard_error_limit": "3"},
        False,
    ),
)
RELAY_DOMAINS = {"elsewhere-plain.test": "plain", "elsewhere-tls.test": "tls"}
"""Domains whose MX is an instance that does not receive their mail."""


def expected_verdict(address: str) -> str:
    """What the suite expects for an address of its domains."""
    local, _, domain = address.partition("@")
    if domain in RELAY_DOMAINS:
        return "unknown"  # 554 5.7.1 relay access denied: pinned (proves nothing either way)
    for name, _, users, _, _ in INSTANCES:
        if domain == f"{name}.postfix.test":
            return "safe" if local in users else "invalid"
    raise ValueError(f"{address} is not an address of the Postfix suite")


def suite_addresses(*, strict_unknown: int = 6) -> list[str]:
    """Every kind of address of the suite: known and unknown users of each instance, a dozen
    for the one-connection instance, relay-denied domains."""
    addresses = [
        "alice@plain.postfix.test",
        "bob@plain.postfix.test",
        "carol@plain.postfix.test",
        "nobody@plain.postfix.test",
        "ghost@plain.postfix.test",
        "someone@elsewhere-plain.test",
        "alice@tls.postfix.test",
        "bob@tls.postfix.test",
        "nobody@tls.postfix.test",
        "someone@elsewhere-tls.test",
    ]
    single = [f"{user}@single.postfix.test" for user in SINGLE_KNOWN + SINGLE_UNKNOWN]
    addresses += [single[n] for n in (0, 8, 1, 2, 9, 3, 4, 10, 5, 6, 11, 7)]  # mixed
    addresses += ["alice@strict.postfix.test", "bob@strict.postfix.test"]
    addresses += [f"ghost{n:02}@strict.postfix.test" for n in range(1, strict_unknown + 1)]
    return addresses


# -- what each test saw, printed at the end ---------------------------------------------------


@dataclass
class Seen:
    test: str
    instance: str
    sessions: int
    refused: int
    too_many_errors: int
    commands: Mapping[str, int]


SEEN: list[Seen] = []
COMMAND_ORDER = ("ehlo", "helo", "starttls", "mail", "rcpt", "rset", "noop", "quit")


def record(test: str, instance: Instance, since: int, until: int | None = None) -> Seen:
    """What `instance` logged between two positions, kept for the summary at the end:
    connections accepted (refused ones too), the commands of the sessions that ended between
    them, refusals for too many connections, sessions dropped for too many errors."""
    commands: dict[str, int] = {}
    for session in instance.sessions_since(since, until):
        for command in session.commands():
            total = int(session.counts[command].rpartition("/")[2])  # "ok/total" or "ok"
            commands[command] = commands.get(command, 0) + total
    order = {name: n for n, name in enumerate(COMMAND_ORDER)}
    seen = Seen(
        test,
        instance.name,
        len(instance.smtpd_lines(since, ": connect from ", until)),
        len(instance.smtpd_lines(since, CONCURRENCY_REFUSED, until)),
        len(instance.smtpd_lines(since, TOO_MANY_ERRORS, until)),
        dict(sorted(commands.items(), key=lambda item: (order.get(item[0], 99), item[0]))),
    )
    SEEN.append(seen)
    return seen


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not SEEN:
        return
    terminalreporter.section("Postfix conformance: what each instance saw")
    for seen in SEEN:
        if not seen.sessions:
            continue
        commands = " ".join(f"{name}={count}" for name, count in seen.commands.items())
        commands = commands or "still open at the end of this part"
        terminalreporter.write_line(
            f"{seen.test}: {seen.instance}: {seen.sessions} connections ({commands}), "
            f"{seen.refused} refused as too many, {seen.too_many_errors} dropped for errors"
        )


# -- fixtures ----------------------------------------------------------------------------


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The in-process tests run under both loops the service ships with: asyncio's own (the
    workers, `mxprobe check`) and uvloop (uvicorn's default, so the API)."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def postfix() -> Iterator[PostfixMail]:
    mail = PostfixMail(
        [
            Instance(name, ip, users, extra=extra, tls=tls)
            for name, ip, users, extra, tls in INSTANCES
        ],
        dns_ip=DNS_IP,
        extra_domains=RELAY_DOMAINS,
    )
    with mail:
        yield mail


@pytest.fixture(autouse=True)
def postfix_took_nothing(postfix: PostfixMail, request: pytest.FixtureRequest) -> Iterator[None]:
    """After the test: every session over, no DATA/BDAT, nothing queued; counts recorded."""
    positions = {name: instance.log_position() for name, instance in postfix.instances.items()}
    yield
    for name, instance in postfix.instances.items():
        since = positions[name]
        instance.wait_idle(since)
        record(request.node.name, instance, since)
        sessions = instance.sessions_since(since)
        log = instance.log_since(since)
        sent_data = [s for s in sessions if {"data", "bdat"} & s.commands()]
        assert not sent_data, f"{name}: DATA or BDAT was sent:\n{log}"
        assert instance.queued() == [], f"{name}: Postfix queued a message:\n{log}"
        assert "improper command pipelining" not in log, log
        assert "non-SMTP command" not in log, log


@pytest.fixture
def postfix_settings(postfix: PostfixMail) -> Settings:
    """The engine pointed at the Postfix instances, as the service runs by default otherwise."""
    return Settings(
        dns_nameservers=(postfix.nameserver,),
        smtp_ports=(postfix.port,),
        allow_private_mx=True,
        hello_name="probe.mxprobe.test",
        from_email="verify@mxprobe.test",
        connect_timeout=2.0,
        smtp_timeout=5.0,  # past the 1 s Postfix waits before each reply once errors pile up
        dns_timeout=1.0,
    )


def postfix_env(postfix: PostfixMail) -> dict[str, str]:
    """The same, as environment variables for `mxprobe serve`."""
    return {
        "MXPROBE_DNS_NAMESERVERS": postfix.nameserver,
        "MXPROBE_SMTP_PORTS": str(postfix.port),
        "MXPROBE_ALLOW_PRIVATE_MX": "true",
        "MXPROBE_HELLO_NAME": "probe.mxprobe.test",
        "MXPROBE_FROM_EMAIL": "verify@mxprobe.test",
        "MXPROBE_CONNECT_TIMEOUT": "2",
        "MXPROBE_SMTP_TIMEOUT": "5",
        "MXPROBE_DNS_TIMEOUT": "1",
        "MXPROBE_WORKER_POLL_INTERVAL": "0.2",
    }
