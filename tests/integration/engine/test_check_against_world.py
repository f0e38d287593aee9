"""The engine, over real sockets, against every behaviour of the simulated mail world."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from app.engine import (
    CheckRequest,
    MemoryCatchAllStore,
    Verifier,
    errors,
)
from app.simulator import Behaviour, World
from app.verifiers import open_verifier
from tests.conftest import world_settings


@pytest.fixture
async def verifier(world: World) -> AsyncIterator[Verifier]:
    async with verifier_for(world) as verifier:
        yield verifier


@asynccontextmanager
async def verifier_for(world: World, **overrides: object) -> AsyncIterator[Verifier]:
    """The engine pointed at the world, with this test's settings, closed afterwards."""
    async with open_verifier(world_settings(world, **overrides), shared_limits=False) as verifier:
        yield verifier


async def check(verifier: Verifier, address: str) -> dict[str, Any]:
    return (await verifier.check(CheckRequest(to_email=address))).to_json()


@pytest.mark.parametrize(
    ("address", "verdict", "smtp"),
    [
        ("alice@normal.test", "safe", {"is_deliverable": True, "is_catch_all": False}),
        ("nobody@normal.test", "invalid", {"is_deliverable": False, "can_connect_smtp": True}),
        ("anyone@catchall.test", "risky", {"is_catch_all": True, "is_deliverable": True}),
        ("alice@full.test", "risky", {"has_full_inbox": True, "is_deliverable": False}),
        ("bob@full.test", "safe", {"is_deliverable": True}),
        ("alice@disabled.test", "invalid", {"is_disabled": True, "is_deliverable": False}),
        ("alice@tls.test", "safe", {"is_deliverable": True}),
        ("alice@slow.test", "safe", {"is_deliverable": True}),
        ("alice@backup.test", "safe", {"is_deliverable": True}),
        ("alice@aonly.test", "safe", {"is_deliverable": True}),
        ("alice@bücher.test", "safe", {"is_deliverable": True}),
        ("alice@busy.test", "safe", {"is_deliverable": True}),
        ("alice@strict.test", "safe", {"is_deliverable": True}),
    ],
)
async def test_mailbox_answers_give_reachers_fields(
    verifier: Verifier, address: str, verdict: str, smtp: dict[str, bool]
) -> None:
    result = await check(verifier, address)

    assert result["is_reachable"] == verdict
    assert result["smtp"].items() >= smtp.items()
    assert result["mx"]["accepts_mail"] is True


@pytest.mark.parametrize(
    ("address", "records"),
    [
        ("x@nullmx.test", []),
        ("x@nomail.test", []),
        ("x@nxdomain.test", []),
    ],
)
async def test_domains_that_take_no_mail_are_invalid(
    verifier: Verifier, world: World, address: str, records: list[str]
) -> None:
    result = await check(verifier, address)

    assert result["is_reachable"] == "invalid"
    assert result["mx"] == {"accepts_mail": False, "records": records}
    assert result["debug"]["smtp"]["verif_method"] == {"type": "Skipped"}


@pytest.mark.parametrize("address", ["x@servfail.test", "x@timeout.test"])
async def test_dns_failures_are_unknown_never_invalid(verifier: Verifier, address: str) -> None:
    result = await check(verifier, address)

    assert result["is_reachable"] == "unknown"
    assert set(result["mx"]) == {"error"}
    assert result["mx"]["error"]["type"] in {"ServerFailure", "Timeout"}


async def test_mx_records_in_preference_order_with_trailing_dots(verifier: Verifier) -> None:
    result = await check(verifier, "alice@backup.test")

    assert result["mx"]["records"] == ["mx1.backup.test.", "mx2.backup.test."]
    assert result["debug"]["probe"]["mx_host"] == "mx2.backup.test"


async def test_implicit_mx_is_the_domain_itself(verifier: Verifier) -> None:
    result = await check(verifier, "alice@aonly.test")

    assert result["mx"]["records"] == ["aonly.test."]


async def test_blocked_ip_is_unknown_with_a_description(verifier: Verifier) -> None:
    result = await check(verifier, "alice@blocked.test")

    assert result["is_reachable"] == "unknown"
    assert result["smtp"]["description"] == "IpBlacklisted"
    assert result["smtp"]["error"]["type"] == "AsyncSmtpError"
    assert result["smtp"]["error"]["message"].startswith("permanent: 5.7.1")


async def test_refused_connection_is_unknown(verifier: Verifier) -> None:
    result = await check(verifier, "alice@refused.test")

    assert result["is_reachable"] == "unknown"
    assert result["smtp"]["error"]["type"] == "AsyncSmtpError"


async def test_tarpit_times_out_as_unknown(world: World) -> None:
    async with verifier_for(world, connect_timeout=0.5) as verifier:
        result = await check(verifier, "alice@tarpit.test")

    assert result["is_reachable"] == "unknown"
    assert result["smtp"]["error"] == {"type": "Timeout", "message": "timed out after 0.5 s"}


async def test_greylisting_is_temporary_not_invalid(verifier: Verifier, world: World) -> None:
    checked = await verifier.verify(CheckRequest(to_email="carol@greylist.test"))
    output = checked.output

    assert output.is_reachable == "unknown"
    assert checked.try_again
    assert output.to_json()["debug"]["probe"]["category"] == "temp_fail"
    assert output.to_json()["smtp"]["error"]["message"].startswith("transient:")


async def test_a_single_check_may_retry_greylisting_once_in_its_budget(world: World) -> None:
    async with verifier_for(world, check_greylist_wait=1.2) as verifier:
        result = await check(verifier, "alice@greylist.test")

    assert result["is_reachable"] == "safe"
    assert result["debug"]["probe"]["attempts"] == 2
    # The retry reused the triplet: same sender, same recipient, so the server let it through.
    commands = [line.lower() for _, line in world.recorder("mx.greylist.test").commands]
    assert sum(line.startswith("rcpt") and "alice@greylist.test" in line for line in commands) == 2
    assert len({line for line in commands if line.startswith("mail")}) == 1


async def test_second_address_at_a_domain_costs_no_catch_all_probe(
    verifier: Verifier, world: World
) -> None:
    recorder = world.recorder("mx.normal.test")

    await check(verifier, "alice@normal.test")
    first = recorder.rcpt_count
    await check(verifier, "bob@normal.test")

    assert first == 2  # alice, then the random catch-all probe
    assert recorder.rcpt_count - first == 1  # bob alone: the domain is known not to be catch-all


async def test_a_known_catch_all_domain_costs_no_connection(
    verifier: Verifier, world: World
) -> None:
    recorder = world.recorder("mx.catchall.test")

    await check(verifier, "first@catchall.test")
    connections = recorder.connections
    result = await check(verifier, "second@catchall.test")

    assert result["smtp"]["is_catch_all"] is True
    assert recorder.connections == connections


async def test_an_invalid_first_address_settles_catch_all_without_a_probe(
    verifier: Verifier, world: World
) -> None:
    store = MemoryCatchAllStore(ttl=60)
    verifier.catch_all = store

    await check(verifier, "ghost@normal.test")

    assert world.recorder("mx.normal.test").rcpt_count == 1
    assert await store.get("normal.test") is False


async def test_the_conversation_never_goes_past_rcpt(verifier: Verifier, world: World) -> None:
    await check(verifier, "alice@normal.test")
    await verifier.close()  # QUIT the pooled session

    verbs = [
        line.split()[0].split(":")[0].upper()
        for _, line in world.recorder("mx.normal.test").commands
    ]
    assert verbs[0] == "EHLO"
    assert "DATA" not in verbs
    assert "BDAT" not in verbs
    assert set(verbs) <= {"EHLO", "STARTTLS", "MAIL", "RCPT", "RSET", "QUIT"}
    assert verbs[-1] == "QUIT"


async def test_opportunistic_starttls_then_ehlo_again(verifier: Verifier, world: World) -> None:
    await check(verifier, "alice@tls.test")

    verbs = [line.split()[0].upper() for _, line in world.recorder("mx.tls.test").commands]
    assert verbs[:3] == ["EHLO", "STARTTLS", "EHLO"]


async def test_busy_server_answering_421_is_temporary(verifier: Verifier, world: World) -> None:
    host, port = "127.0.0.19", world.smtp_port
    # Somebody else holds the only connection the server allows, for the whole check.
    reader, writer = await asyncio.open_connection(host, port)
    await reader.readline()
    try:
        checked = await verifier.verify(CheckRequest(to_email="alice@busy.test"))
    finally:
        writer.close()
        await writer.wait_closed()

    assert checked.output.is_reachable == "unknown"
    assert checked.try_again
    # The refused recipient waited and asked again, a few times, not in a tight loop.
    assert 2 <= world.recorder("mx.busy.test").refused_421 <= 3


async def test_a_one_connection_server_never_sees_two_at_once(world: World) -> None:
    """A dozen addresses at a server that allows one connection, among 200 checked 16 at a
    time: one pipelined session serves them all, and no connection is ever refused."""
    others = [f"{n}@{d}" for n in ("alice", "bob", "ghost") for d in ("normal.test", "full.test")]
    addresses = [f"user{i}@busy.test" for i in range(11)] + ["alice@busy.test"]
    addresses += [others[i % len(others)] for i in range(200 - len(addresses))]
    addresses = addresses[::2] + addresses[1::2]  # the busy ones spread through the list
    gate = asyncio.Semaphore(16)
    for _ in range(100):  # an earlier test's connection may still be closing
        if world.recorder("mx.busy.test").active == 0:
            break
        await asyncio.sleep(0.02)
    world.reset_recorders()

    async def one(verifier: Verifier, address: str) -> str:
        async with gate:
            return (await check(verifier, address))["is_reachable"]

    async with verifier_for(world, session_idle_timeout=5.0) as verifier:
        verdicts = await asyncio.gather(*(one(verifier, a) for a in addresses))

    busy = world.recorder("mx.busy.test")
    assert busy.peak_connections == 1
    assert busy.refused_421 == 0
    assert dict(zip(addresses, verdicts, strict=True))["alice@busy.test"] == "safe"
    assert verdicts.count("invalid") >= 11


async def test_private_mx_is_not_contacted_unless_allowed(world: World) -> None:
    async with verifier_for(world, allow_private_mx=False) as verifier:
        result = await check(verifier, "alice@normal.test")

    assert result["is_reachable"] == "unknown"
    assert result["smtp"]["error"]["type"] == "PrivateMx"
    assert "MXPROBE_ALLOW_PRIVATE_MX" in result["smtp"]["error"]["message"]
    assert world.recorder("mx.normal.test").connections == 0


@pytest.mark.parametrize(
    "address",
    [
        "alice@normal.test\r\nDATA",
        "alice@normal.test\nRCPT TO:<bob@normal.test>",
        "alice\r\n@normal.test",
        "ali\x00ce@normal.test",
        "alice@normal.test\t",
    ],
)
async def test_addresses_with_control_characters_never_reach_the_wire(
    verifier: Verifier, world: World, address: str
) -> None:
    result = await check(verifier, address)

    assert result["is_reachable"] == "invalid"
    assert result["syntax"]["is_valid_syntax"] is False
    assert sum(r.connections for r in world.recorders.values()) == 0


@pytest.mark.parametrize(
    "field", [{"hello_name": "evil\r\nDATA"}, {"from_email": "a@b.test\r\nRCPT TO:<x@y.test>"}]
)
async def test_unsafe_hello_name_or_sender_is_refused_before_connecting(
    verifier: Verifier, world: World, field: dict[str, str]
) -> None:
    with pytest.raises(errors.UnsafeAddress):
        await verifier.check(CheckRequest(to_email="alice@normal.test", **field))

    assert sum(r.connections for r in world.recorders.values()) == 0


async def test_requested_ports_are_tried_in_order(verifier: Verifier, world: World) -> None:
    closed_port = _unused_port()
    result = await verifier.check(
        CheckRequest(to_email="alice@normal.test", smtp_ports=(closed_port, world.smtp_port))
    )

    assert result.is_reachable == "safe"
    assert result.to_json()["debug"]["smtp"]["verif_method"]["verif_method"]["smtp_port"] == (
        world.smtp_port
    )


async def test_output_has_reachers_shape_and_key_order(verifier: Verifier) -> None:
    result = await check(verifier, "alice@normal.test")

    assert list(result) == ["input", "is_reachable", "misc", "mx", "smtp", "syntax", "debug"]
    assert list(result["misc"])[:5] == [  # Reacher's, then ours (README "Fields of a result")
        "is_disposable",
        "is_role_account",
        "is_b2c",
        "gravatar_url",
        "haveibeenpwned",
    ]
    assert list(result["syntax"]) == [
        "address",
        "domain",
        "is_valid_syntax",
        "username",
        "normalized_email",
        "suggestion",
    ]
    method = result["debug"]["smtp"]["verif_method"]
    assert method["type"] == "Smtp"
    assert method["host"] == "mx.normal.test."
    assert method["verif_method"]["hello_name"] == "probe.mxprobe.test"
    assert result["debug"]["probe"]["code"] == 250


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.10", 0))
        return int(sock.getsockname()[1])


async def test_dns_answers_are_cached_within_their_ttl(verifier: Verifier, world: World) -> None:
    await check(verifier, "alice@normal.test")
    await check(verifier, "bob@normal.test")
    await check(verifier, "carol@normal.test")

    assert world.dns_queries[("normal.test", "MX")] == 1
    assert world.dns_queries[("mx.normal.test", "A")] == 1


async def test_concurrent_lookups_of_one_domain_share_one_query(
    verifier: Verifier, world: World
) -> None:
    await asyncio.gather(*(check(verifier, f"user{i}@normal.test") for i in range(5)))

    assert world.dns_queries[("normal.test", "MX")] == 1


async def test_later_addresses_reuse_the_open_session(verifier: Verifier, world: World) -> None:
    recorder = world.recorder("mx.normal.test")

    results = [
        await check(verifier, f"{name}@normal.test") for name in ("alice", "bob", "x1", "x2")
    ]

    assert [r["is_reachable"] for r in results] == ["safe", "safe", "invalid", "invalid"]
    assert recorder.connections == 1
    assert recorder.count("MAIL") == 1
    assert recorder.count("EHLO") == 2  # before and after STARTTLS, once


async def test_an_idle_session_is_closed_politely(world: World) -> None:
    async with verifier_for(world, session_idle_timeout=0.3) as verifier:
        await check(verifier, "alice@normal.test")
        await asyncio.sleep(1.0)
        verbs = [line.split()[0].upper() for _, line in world.recorder("mx.normal.test").commands]

    assert verbs[-1] == "QUIT"
    assert world.recorder("mx.normal.test").active == 0


async def test_the_unknown_recipient_budget_is_kept_under_the_servers(
    verifier: Verifier, world: World
) -> None:
    """strict.test hangs up after its 2nd unknown recipient; our budget for unknown domains is
    larger, so the 421 must be absorbed: a fresh session, the same verdicts."""
    recorder = world.recorder("mx.strict.test")
    names = ["alice", "u1", "u2", "u3", "alice", "u4", "u5"]

    results = [await check(verifier, f"{name}@strict.test") for name in names]

    expected = ["safe", "invalid", "invalid", "invalid", "safe", "invalid", "invalid"]
    assert [r["is_reachable"] for r in results] == expected
    assert recorder.connections >= 2


async def test_reused_sessions_give_the_verdicts_fresh_ones_do(world: World) -> None:
    addresses = [
        "alice@normal.test",
        "nobody@normal.test",
        "bob@normal.test",
        "x@catchall.test",
        "alice@full.test",
        "bob@full.test",
        "alice@disabled.test",
        "zed@disabled.test",
        "alice@tls.test",
        "alice@strict.test",
        "u1@strict.test",
        "u2@strict.test",
        "u3@strict.test",
        "alice@slow.test",
        "alice@backup.test",
        "alice@blocked.test",
    ] * 2

    async def run(idle_timeout: float) -> list[tuple[str, object]]:
        async with verifier_for(world, session_idle_timeout=idle_timeout) as verifier:
            outputs = [await verifier.check(CheckRequest(to_email=a)) for a in addresses]
        return [(o.is_reachable.value, o.to_json()["smtp"]) for o in outputs]

    fresh = await run(0.0)
    fresh_connections = sum(r.connections for r in world.recorders.values())
    world.reset_recorders()
    reused = await run(5.0)
    reused_connections = sum(r.connections for r in world.recorders.values())

    assert reused == fresh
    assert reused_connections < fresh_connections / 2


async def test_an_mx_limits_override_caps_recipients_per_session(world: World) -> None:
    async with verifier_for(
        world, mx_limits={"mx.normal.test": {"max_msg_per_connection": 1}}
    ) as verifier:
        for name in ("x1", "x2", "x3"):
            await check(verifier, f"{name}@normal.test")

    assert world.recorder("mx.normal.test").connections == 3


async def test_concurrent_checks_share_pipelined_flights_and_keep_every_verdict(
    world: World,
) -> None:
    """Many checks at once on one MX ride the same sessions: several RCPTs per write, each
    reply matched to its own address, the verdicts those of one fresh session per address."""
    names = ["alice", "bob", *(f"ghost{i}" for i in range(10)), "alice", "bob"]
    addresses = [f"{name}@normal.test" for name in names] + [
        "alice@strict.test",
        "u1@strict.test",
        "u2@strict.test",
        "u3@strict.test",
        "x@catchall.test",
        "y@catchall.test",
        "alice@full.test",
        "bob@full.test",
    ]

    async with verifier_for(world, session_idle_timeout=0.0) as verifier:
        fresh = [(await check(verifier, a))["is_reachable"] for a in addresses]
    world.reset_recorders()
    async with verifier_for(world, session_idle_timeout=5.0) as verifier:
        outputs = await asyncio.gather(*(check(verifier, a) for a in addresses))
    shared = [o["is_reachable"] for o in outputs]

    assert shared == fresh
    assert fresh[:2] == ["safe", "safe"]
    assert set(fresh[2:12]) == {"invalid"}
    normal = world.recorder("mx.normal.test")
    assert normal.rcpt_count >= len(names)
    # Beyond each session's banner, EHLO, STARTTLS, EHLO and QUIT: fewer round trips than
    # RCPTs, so several went out in one write.
    flights = normal.round_trips - 5 * normal.connections
    assert flights < normal.rcpt_count


async def test_a_server_without_pipelining_gets_one_command_per_round_trip() -> None:
    world = World()
    world.add_mx("mx.plain.test", ip="127.0.0.60", behaviour=Behaviour(pipelining=False))
    world.add_domain("plain.test", mx=[(10, "mx.plain.test")], mailboxes=["alice", "bob"])
    with world:
        async with verifier_for(world, session_idle_timeout=5.0) as verifier:
            names = ["alice", "bob", "carol", "dave", "alice"]
            outputs = await asyncio.gather(*(check(verifier, f"{n}@plain.test") for n in names))
        recorder = world.recorder("mx.plain.test")
        verbs = [line.split()[0].upper() for _, line in recorder.commands]

    assert [o["is_reachable"] for o in outputs] == ["safe", "safe", "invalid", "invalid", "safe"]
    # every command, QUIT included, had its own round trip (plus the banner)
    assert recorder.round_trips == len(verbs) + recorder.connections


async def test_a_send_rate_spaces_the_rcpts_to_an_mx_group(world: World) -> None:
    addresses = [f"ghost{i}@normal.test" for i in range(6)]
    async with verifier_for(world, mx_rate="10/s") as verifier:
        started = asyncio.get_running_loop().time()
        outputs = await asyncio.gather(*(check(verifier, a) for a in addresses))
        took = asyncio.get_running_loop().time() - started

    assert {o["is_reachable"] for o in outputs} == {"invalid"}
    # 6 RCPTs at 10 a second: the last goes out 0.5 s after the first, at the earliest
    assert took >= 0.5


async def test_a_tarpit_is_remembered_and_shortens_the_next_connect_timeouts(world: World) -> None:
    async with verifier_for(world, connect_timeout=0.3) as verifier:
        for name in ("alice", "bob"):
            assert (await check(verifier, f"{name}@tarpit.test"))["is_reachable"] == "unknown"
        stats = verifier.pool.behaviour.stats("mx.tarpit.test")
        timeouts = verifier.pool.behaviour.timeouts("mx.tarpit.test", connect=30.0, command=30.0)

    assert stats is not None
    assert stats.tarpitting
    assert timeouts[0] < 30.0


def transactions(recorder_commands: list[tuple[int, str]]) -> list[list[str]]:
    """The RCPT addresses of each transaction (MAIL FROM to RSET/QUIT), per connection."""
    found: dict[tuple[int, int], list[str]] = {}
    started: dict[int, int] = {}
    for connection, line in recorder_commands:
        verb = line.split(":")[0].split()[0].upper()
        if verb == "MAIL":
            started[connection] = started.get(connection, 0) + 1
        elif verb == "RCPT":
            key = (connection, started[connection])
            found.setdefault(key, []).append(line.split("<", 1)[1].rstrip(">"))
    return list(found.values())


async def test_provider_policies_hold_on_pipelined_sessions() -> None:
    """Gmail: one domain per transaction (RSET between). Consumer Outlook: one recipient per
    session. Both with many checks at once, so flights would carry several if allowed."""
    world = World()
    world.add_mx("gmail-smtp-in.l.google.com", ip="127.0.0.61")
    world.add_mx("hotmail-com.olc.protection.outlook.com", ip="127.0.0.62")
    for domain in ("one.test", "two.test"):
        world.add_domain(domain, mx=[(5, "gmail-smtp-in.l.google.com")], mailboxes=["alice"])
    world.add_domain(
        "hot.test", mx=[(5, "hotmail-com.olc.protection.outlook.com")], mailboxes=["alice"]
    )
    addresses = [
        f"{name}@{domain}"
        for name in ("alice", "bob", "carol")
        for domain in ("one.test", "two.test", "hot.test")
    ]
    with world:
        async with verifier_for(world, session_idle_timeout=5.0) as verifier:
            outputs = await asyncio.gather(*(check(verifier, a) for a in addresses))
        gmail = transactions(world.recorder("gmail-smtp-in.l.google.com").commands)
        outlook = world.recorder("hotmail-com.olc.protection.outlook.com")
        outlook_rcpts, outlook_connections = outlook.rcpt_count, outlook.connections

    verdicts = {a: o["is_reachable"] for a, o in zip(addresses, outputs, strict=True)}
    assert {a for a, v in verdicts.items() if v == "safe"} == {
        "alice@one.test",
        "alice@two.test",
        "alice@hot.test",
    }
    assert all(len({rcpt.split("@")[1] for rcpt in rcpts}) == 1 for rcpts in gmail)
    assert sum(len(rcpts) for rcpts in gmail) == 6
    assert max(len(rcpts) for rcpts in gmail) > 1  # yet each carried several
    assert outlook_rcpts == outlook_connections == 3
