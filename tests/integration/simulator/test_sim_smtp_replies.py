"""The RCPT replies of the standard world's MX hosts, over real loopback sockets."""

from __future__ import annotations

import smtplib

import pytest

from app.simulator import Behaviour, World

ALICE_OK = (250, "2.1.5")
UNKNOWN = (550, "5.1.1")


def rcpt(connect, world: World, host: str, address: str) -> tuple[int, str]:
    client = connect(world, host)
    client.ehlo()
    assert client.mail("probe@client.test")[0] == 250
    code, text = client.rcpt(address)
    client.quit()
    return code, text.decode()


@pytest.mark.parametrize(
    ("host", "address", "expected"),
    [
        ("mx.normal.test", "alice@normal.test", ALICE_OK),
        ("mx.normal.test", "bob@normal.test", ALICE_OK),
        ("mx.normal.test", "Alice@NORMAL.test", ALICE_OK),
        ("mx.normal.test", "carol@normal.test", UNKNOWN),
        ("mx.normal.test", "alice@aonly.test", ALICE_OK),
        ("mx.normal.test", "carol@aonly.test", UNKNOWN),
        ("mx.normal.test", "alice@elsewhere.test", (550, "5.7.1")),
        ("mx.catchall.test", "alice@catchall.test", ALICE_OK),
        ("mx.catchall.test", "anything-at-all@catchall.test", ALICE_OK),
        ("mx.full.test", "alice@full.test", (552, "5.2.2")),
        ("mx.full.test", "bob@full.test", ALICE_OK),
        ("mx.full.test", "carol@full.test", UNKNOWN),
        ("mx.disabled.test", "alice@disabled.test", (550, "5.2.1")),
        ("mx.disabled.test", "carol@disabled.test", UNKNOWN),
        ("mx.blocked.test", "alice@blocked.test", (554, "5.7.1")),
        ("mx.slow.test", "alice@slow.test", ALICE_OK),
        ("mx.busy.test", "alice@busy.test", ALICE_OK),
        ("mx.strict.test", "alice@strict.test", ALICE_OK),
        ("mx2.backup.test", "alice@backup.test", ALICE_OK),
        ("mx2.backup.test", "carol@backup.test", UNKNOWN),
        ("mx.xn--bcher-kva.test", "alice@xn--bcher-kva.test", ALICE_OK),
        ("mx.xn--bcher-kva.test", "carol@xn--bcher-kva.test", UNKNOWN),
    ],
)
def test_rcpt_reply(connect, std: World, host: str, address: str, expected: tuple[int, str]):
    code, text = rcpt(connect, std, host, address)
    assert (code, text.split(" ", 1)[0]) == expected


def test_reply_texts(connect, std: World):
    assert "User unknown" in rcpt(connect, std, "mx.normal.test", "carol@normal.test")[1]
    assert "Mailbox full, over quota" in rcpt(connect, std, "mx.full.test", "alice@full.test")[1]
    assert "Mailbox disabled" in rcpt(connect, std, "mx.disabled.test", "alice@disabled.test")[1]
    blocked = rcpt(connect, std, "mx.blocked.test", "alice@blocked.test")[1]
    assert "client host [127.0.0.1] blocked using zen.spamhaus.org" in blocked
    assert "Relaying denied" in rcpt(connect, std, "mx.normal.test", "a@elsewhere.test")[1]


def test_unicode_domain_is_matched_to_its_punycode(connect, std: World):
    client = connect(std, "mx.xn--bcher-kva.test")
    client.ehlo()
    assert client.has_extn("smtputf8")
    client.mail("probe@client.test", ["SMTPUTF8"])
    assert client.rcpt("alice@bücher.test")[0] == 250


def test_ehlo_advertises_pipelining_starttls_and_enhanced_codes(connect, std: World):
    client = connect(std, "mx.normal.test")
    code, _ = client.ehlo()
    assert code == 250
    for extension in ("pipelining", "starttls", "enhancedstatuscodes", "8bitmime"):
        assert client.has_extn(extension), extension
    assert not client.has_extn("auth")


def test_extensions_can_be_switched_off(connect, mx_world):
    world = mx_world(Behaviour(pipelining=False, starttls=False))
    client = connect(world)
    client.ehlo()
    assert not client.has_extn("pipelining")
    assert not client.has_extn("starttls")
    assert client.docmd("STARTTLS")[0] == 454  # TLS not available


def test_null_sender_is_accepted(connect, std: World):
    client = connect(std, "mx.normal.test")
    client.ehlo()
    assert client.mail("")[0] == 250
    assert client.rcpt("alice@normal.test")[0] == 250


def test_refused_host_refuses_connections(std: World):
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(std.mx_ip("mx.refused.test"), std.smtp_port, timeout=2)
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(std.mx_ip("mx1.backup.test"), std.smtp_port, timeout=2)


def test_data_is_refused_and_recorded(connect, mx_world):
    world = mx_world()
    client = connect(world)
    client.ehlo()
    client.mail("probe@client.test")
    client.rcpt("alice@example.test")
    code, text = client.docmd("DATA")
    assert (code, text) == (554, b"5.7.0 DATA is forbidden in the simulated world")
    assert client.noop()[0] == 250  # the session goes on
    client.quit()
    recorder = world.recorder("mx.example.test")
    assert recorder.data_commands == 1
    assert recorder.count("data") == 1
    assert world.total_data_commands() == 1
    world.reset_recorders()
    assert world.total_data_commands() == 0


def test_bdat_is_refused_recorded_and_hung_up(connect, mx_world):
    world = mx_world()
    client = connect(world)
    client.ehlo()
    client.mail("probe@client.test")
    client.rcpt("alice@example.test")
    assert client.docmd("BDAT", "4 LAST")[0] == 554
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    assert world.total_data_commands() == 1
