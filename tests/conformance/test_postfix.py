"""Conformance against real Postfix (Debian's package), not only our simulator: verdicts for
known, unknown and relay-denied recipients, plain and after STARTTLS; a server that allows one
connection per client never sees two; a server that hangs up after three errors still gets
every unknown recipient right; single checks and a bulk job agree, through `mxprobe serve`.

The in-process tests run under asyncio's loop and uvloop (see conftest). The instances, and
the checks made after every test (no DATA, nothing queued), are in conftest.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from pprint import pformat
from typing import Any

import pytest

from app.engine import CheckRequest, Verifier
from app.settings import Settings
from app.verifiers import open_verifier
from tests.conformance.conftest import (
    CONCURRENCY_REFUSED,
    DNS_IP,
    RELAY_DOMAINS,
    SINGLE_KNOWN,
    SINGLE_UNKNOWN,
    expected_verdict,
    postfix_env,
    record,
    suite_addresses,
)
from tests.fixtures.postfix import Instance, PostfixMail
from tests.fixtures.services import check_in_bulk, check_singly, service_env, start_serve

AT_ONCE = 16


async def check_all(
    settings: Settings, addresses: list[str], *, at_once: int = AT_ONCE
) -> dict[str, dict[str, Any]]:
    """Each address checked by one engine, `at_once` at a time, as `mxprobe check` does."""
    gate = asyncio.Semaphore(at_once)

    async def one(verifier: Verifier, address: str) -> dict[str, Any]:
        async with gate:
            return (await verifier.check(CheckRequest(to_email=address))).to_json()

    async with open_verifier(settings, shared_limits=False) as verifier:
        outputs = await asyncio.gather(*(one(verifier, a) for a in addresses))
    return dict(zip(addresses, outputs, strict=True))


def verdicts(outputs: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {address: output["is_reachable"] for address, output in outputs.items()}


def expected(addresses: list[str]) -> dict[str, str]:
    return {address: expected_verdict(address) for address in addresses}


def smtp_exchange(sock: socket.socket, line: str) -> bytes:
    sock.sendall(line.encode() + b"\r\n")
    return read_reply(sock)


def read_reply(sock: socket.socket) -> bytes:
    reply = b""
    while not reply.endswith(b"\r\n") or reply.split(b"\r\n")[-2][3:4] == b"-":
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply


# -- the instances are what they claim to be ------------------------------------------------


def test_the_one_connection_instance_refuses_a_second_connection(postfix: PostfixMail) -> None:
    single = postfix["single"]
    since = single.log_position()

    with socket.create_connection((single.ip, single.port), timeout=5) as first:
        assert read_reply(first).startswith(b"220 ")
        with socket.create_connection((single.ip, single.port), timeout=5) as second:
            refused = read_reply(second)
        assert smtp_exchange(first, "QUIT").startswith(b"221 ")

    assert refused.startswith(b"421 4.7.0 ")
    assert b"too many connections" in refused
    single.wait_idle(since)
    assert len(single.smtpd_lines(since, CONCURRENCY_REFUSED)) == 1


def test_the_strict_instance_hangs_up_after_three_errors(postfix: PostfixMail) -> None:
    strict = postfix["strict"]

    with socket.create_connection((strict.ip, strict.port), timeout=10) as sock:
        assert read_reply(sock).startswith(b"220 ")
        assert smtp_exchange(sock, "EHLO probe.mxprobe.test").startswith(b"250")
        assert smtp_exchange(sock, "MAIL FROM:<verify@mxprobe.test>").startswith(b"250 ")
        replies = [smtp_exchange(sock, f"RCPT TO:<ghost{n}@{strict.domain}>") for n in range(4)]

    assert [reply[:9] for reply in replies[:3]] == [b"550 5.1.1"] * 3
    assert replies[3].startswith(b"421 4.7.0 ")
    assert b"too many errors" in replies[3]


def test_the_log_shows_data_and_postfix_refuses_it() -> None:
    """What the checks after every test rely on, on an instance of its own: a session that
    sends DATA shows it on its `disconnect from` line, and Postfix refuses the message."""
    with PostfixMail([Instance("witness", "127.25.0.9", ["alice"])], dns_ip=DNS_IP) as mail:
        witness = mail["witness"]
        since = witness.log_position()
        with socket.create_connection((witness.ip, witness.port), timeout=5) as sock:
            assert read_reply(sock).startswith(b"220 ")
            assert smtp_exchange(sock, "EHLO probe.mxprobe.test").startswith(b"250")
            assert smtp_exchange(sock, "MAIL FROM:<verify@mxprobe.test>").startswith(b"250 ")
            assert smtp_exchange(sock, f"RCPT TO:<{witness.address('alice')}>").startswith(b"250 ")
            data = smtp_exchange(sock, "DATA")
            assert smtp_exchange(sock, "QUIT").startswith(b"221 ")
        witness.wait_idle(since)

        assert data.startswith(b"554 "), data
        (session,) = witness.sessions_since(since)
        assert session.counts["data"] == "0/1"
        assert witness.queued() == []


# -- verdicts ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["plain", "tls"])
async def test_known_unknown_and_relay_denied_recipients(
    postfix: PostfixMail, postfix_settings: Settings, name: str
) -> None:
    instance = postfix[name]
    since = instance.log_position()
    (relay_domain,) = [domain for domain, target in RELAY_DOMAINS.items() if target == name]
    known = [instance.address(user) for user in instance.users]
    unknown = [instance.address("nobody"), instance.address("ghost")]
    relay = f"someone@{relay_domain}"

    outputs = await check_all(postfix_settings, [*known, *unknown, relay])

    for address in known:
        assert outputs[address]["is_reachable"] == "safe", outputs[address]
        assert outputs[address]["smtp"]["is_deliverable"] is True
        assert outputs[address]["debug"]["probe"]["code"] == 250
    for address in unknown:
        assert outputs[address]["is_reachable"] == "invalid", outputs[address]
        assert outputs[address]["smtp"]["is_deliverable"] is False
        probe = outputs[address]["debug"]["probe"]
        assert (probe["code"], probe["message"][:5]) == (550, "5.1.1"), probe
    # "554 5.7.1 Relay access denied" says nothing about the mailbox: not safe, not invalid.
    assert outputs[relay]["is_reachable"] == "unknown", outputs[relay]
    assert outputs[relay]["debug"]["probe"]["code"] == 554
    assert "Relay access denied" in outputs[relay]["smtp"]["error"]["message"]
    instance.wait_idle(since)
    sessions = instance.sessions_since(since)
    assert sessions, instance.log_since(since)
    tls_used = instance.smtpd_lines(since, "Anonymous TLS connection established from")
    if instance.tls:
        assert all(session.counts.get("starttls") == "1" for session in sessions), sessions
        assert len(tls_used) == len(sessions), instance.log_since(since)
    else:
        assert not tls_used
        assert not any("starttls" in session.counts for session in sessions)


async def test_one_connection_server_never_sees_two_connections(
    postfix: PostfixMail, postfix_settings: Settings
) -> None:
    """A dozen addresses at the one-connection server among others, 16 checked at a time."""
    single = postfix["single"]
    since = single.log_position()
    addresses = [a for a in suite_addresses() if not a.endswith("@strict.postfix.test")]
    assert sum(a.endswith(f"@{single.domain}") for a in addresses) == 12
    assert len(SINGLE_KNOWN + SINGLE_UNKNOWN) == 12

    outputs = await check_all(postfix_settings, addresses)

    single.wait_idle(since)
    refused = single.smtpd_lines(since, CONCURRENCY_REFUSED)
    assert refused == [], f"{len(refused)} connections refused:\n{single.log_since(since)}"
    assert verdicts(outputs) == expected(addresses)
    assert single.sessions_since(since), "no session reached the one-connection server"


async def test_many_unknown_recipients_at_a_server_with_small_error_limits(
    postfix: PostfixMail, postfix_settings: Settings
) -> None:
    """Postfix hangs up after three errors in a session: nine unknown recipients (and two
    known ones) all checked at once still get their own verdicts."""
    strict = postfix["strict"]
    since = strict.log_position()
    unknown = [strict.address(f"ghost{n:02}") for n in range(1, 10)]
    addresses = [strict.address("alice"), *unknown, strict.address("bob")]

    outputs = await check_all(postfix_settings, addresses)

    wrong = {a: o["smtp"] for a, o in outputs.items() if o["is_reachable"] != expected_verdict(a)}
    assert wrong == {}, strict.log_since(since)


def test_mxprobe_check_on_the_command_line(postfix: PostfixMail) -> None:
    """`mxprobe check` with the dozen addresses of the one-connection server among others: it
    checks them all at once, on asyncio's loop."""
    single = postfix["single"]
    since = single.log_position()
    addresses = [a for a in suite_addresses() if not a.endswith("@strict.postfix.test")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MXPROBE_")}
    env.update(postfix_env(postfix))

    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "check", "--json", *addresses],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    outputs = {output["input"]: output for output in json.loads(done.stdout)}
    single.wait_idle(since)
    refused = single.smtpd_lines(since, CONCURRENCY_REFUSED)
    assert refused == [], f"{len(refused)} connections refused:\n{single.log_since(since)}"
    assert verdicts(outputs) == expected(addresses)


# -- the service: single checks and a bulk job -----------------------------------------------


def instance_for(postfix: PostfixMail, address: str) -> Instance:
    domain = address.rpartition("@")[2]
    return postfix[RELAY_DOMAINS.get(domain) or domain.split(".")[0]]


def test_single_checks_and_a_bulk_job_agree(
    postfix: PostfixMail, fresh_database_url: str, tmp_path: Path
) -> None:
    """Every address of the suite, 16 single checks at a time through the API (uvloop), then
    all of them in one bulk job (two workers, asyncio's loop): the expected verdicts, the same
    both ways, and the one-connection server never refuses a connection."""
    addresses = suite_addresses()
    env = service_env(fresh_database_url, postfix_env(postfix))
    serve, url = start_serve(env=env, logs=tmp_path)
    try:
        before_checks = {name: i.log_position() for name, i in postfix.instances.items()}
        checked = check_singly(url, addresses, in_flight=AT_ONCE)
        before_bulk = {name: i.log_position() for name, i in postfix.instances.items()}
        _, bulk = check_in_bulk(url, addresses, within=120)
    finally:
        exit_code = serve.stop()
    for name, instance in postfix.instances.items():
        instance.wait_idle(before_checks[name])
        record(
            "test_single_checks_and_a_bulk_job_agree, single checks",
            instance,
            before_checks[name],
            before_bulk[name],
        )
        record("test_single_checks_and_a_bulk_job_agree, bulk job", instance, before_bulk[name])

    by_bulk = {result["input"]: result for result in bulk}
    report = {
        address: {
            "expected": expected_verdict(address),
            "check": checked[address]["is_reachable"],
            "bulk": by_bulk[address]["is_reachable"],
            "check_smtp": checked[address]["smtp"],
            "bulk_smtp": by_bulk[address]["smtp"],
            "postfix_log": instance_for(postfix, address).smtpd_lines(
                before_checks[instance_for(postfix, address).name], address
            ),
        }
        for address in addresses
        if not (
            checked[address]["is_reachable"]
            == by_bulk[address]["is_reachable"]
            == expected_verdict(address)
        )
    }
    service_log = "\n".join(line for line in serve.output().splitlines() if "HTTP/1.1" not in line)
    assert report == {}, f"verdicts differ:\n{pformat(report)}\n{service_log[-6000:]}"
    assert [result["input"] for result in bulk] == addresses
    single = postfix["single"]
    refused = single.smtpd_lines(before_checks["single"], CONCURRENCY_REFUSED)
    assert refused == [], single.log_since(before_checks["single"])
    assert exit_code == 0, service_log
