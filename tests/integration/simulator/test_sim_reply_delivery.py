"""How a fake MX's replies reach the client (`Behaviour.segments`, multi-line replies, slow
banners), read with a raw socket: what each `recv` returns is what arrived by then.

A split reply or a trickling banner leaves in pieces a pause apart; the tests pause long
enough (a quarter of a second or more) for a client blocked in `recv` to get each piece alone.
"""

from __future__ import annotations

import smtplib
import socket
import time

import pytest

from app.simulator import Behaviour, World
from tests.integration.simulator.conftest import MX_IP

BANNER = b"220 mx.example.test ESMTP mxprobe simulator\r\n"
PAUSE = 0.3


def complete(data: bytes) -> int:
    """How many complete replies `data` holds (a reply ends with a line without "-")."""
    return sum(1 for line in data.split(b"\r\n")[:-1] if line[3:4] != b"-")


def reads_until(sock: socket.socket, replies: int) -> list[bytes]:
    """Every `recv` result until `replies` complete replies have arrived."""
    chunks: list[bytes] = []
    while complete(b"".join(chunks)) < replies:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {chunks}"
        chunks.append(chunk)
    return chunks


def open_raw(world: World) -> socket.socket:
    return socket.create_connection((MX_IP, world.smtp_port), timeout=10)


def test_split_replies_arrive_in_two_pieces_cut_by_turns(mx_world) -> None:
    world = mx_world(Behaviour(starttls=False, segments="split", split_pause=PAUSE))
    with open_raw(world) as sock:
        banner = reads_until(sock, 1)  # cut in the reply code
        sock.sendall(b"NOOP\r\n")
        middle = reads_until(sock, 1)  # cut in the middle
        sock.sendall(b"NOOP\r\n")
        crlf = reads_until(sock, 1)  # cut between CR and LF
        sock.sendall(b"EHLO client.test\r\n")
        ehlo = b"".join(reads_until(sock, 1))

    assert banner == [b"22", b"0 mx.example.test ESMTP mxprobe simulator\r\n"]
    assert middle == [b"250 ", b"OK\r\n"]
    assert crlf == [b"250 OK\r", b"\n"]
    assert ehlo.startswith(b"250-mx.example.test\r\n")
    assert ehlo.endswith(b"250 HELP\r\n")


def test_split_replies_to_a_pipelined_flight_keep_their_order(std: World) -> None:
    with socket.create_connection((std.mx_ip("mx.splitpipe.test"), std.smtp_port), 10) as sock:
        reads_until(sock, 1)
        sock.sendall(b"EHLO client.test\r\n")
        assert b"PIPELINING" in b"".join(reads_until(sock, 1))
        sock.sendall(
            b"MAIL FROM:<probe@client.test>\r\n"
            b"RCPT TO:<alice@splitpipe.test>\r\n"
            b"RCPT TO:<ghost1@splitpipe.test>\r\n"
            b"RCPT TO:<dave@splitpipe.test>\r\n"
            b"RSET\r\n"
            b"QUIT\r\n"
        )
        replies = b"".join(reads_until(sock, 6)).decode().split("\r\n")[:-1]

    assert [reply[:3] for reply in replies] == ["250", "250", "550", "450", "250", "221"]
    assert "receiving mail at a rate" in replies[3]


def test_per_flight_writes_the_replies_to_a_flight_together(mx_world) -> None:
    world = mx_world(Behaviour(starttls=False, segments="per_flight"))
    with open_raw(world) as sock:
        assert reads_until(sock, 1) == [BANNER]
        sock.sendall(b"EHLO client.test\r\n")
        assert len(reads_until(sock, 1)) == 1  # a multi-line reply is one write too
        sock.sendall(
            b"MAIL FROM:<probe@client.test>\r\n"
            b"RCPT TO:<alice@example.test>\r\n"
            b"RCPT TO:<nobody@example.test>\r\n"
            b"RCPT TO:<alice@example.test>\r\n"
            b"RSET\r\n"
        )
        flight = sock.recv(65536)  # one segment: all five replies at once
        sock.sendall(b"RSET\r\nQUIT\r\n")
        closing = sock.recv(65536)
        assert sock.recv(65536) == b""  # then the server hung up

    assert complete(flight) == 5
    assert [line[:3] for line in flight.split(b"\r\n")[:-1]] == [
        b"250",
        b"250",
        b"550",
        b"250",
        b"250",
    ]
    assert closing == b"250 OK\r\n221 Bye\r\n"


def test_per_reply_writes_a_multi_line_reply_at_once(mx_world) -> None:
    world = mx_world(Behaviour(starttls=False, segments="per_reply"))
    with open_raw(world) as sock:
        reads_until(sock, 1)
        sock.sendall(b"EHLO client.test\r\n")
        ehlo = sock.recv(65536)

    lines = ehlo.split(b"\r\n")
    assert lines[0] == b"250-mx.example.test"
    assert b"250-PIPELINING" in lines
    assert lines[-2:] == [b"250 HELP", b""]


def test_multi_line_rcpt_replies(mx_world, connect) -> None:
    world = mx_world(Behaviour(multiline_rcpt=True))
    client = connect(world)
    client.ehlo()
    client.mail("probe@client.test")

    assert client.rcpt("alice@example.test") == (250, b"2.1.5 Ok\n2.1.5 Ok")
    assert client.rcpt("nobody@example.test") == (
        550,
        b"5.1.1 <nobody@example.test>: Recipient address\n5.1.1 rejected: User unknown",
    )


def test_multi_line_banner(mx_world) -> None:
    world = mx_world(Behaviour(banner_lines=3))
    with open_raw(world) as sock:
        banner = b"".join(reads_until(sock, 1))
    with smtplib.SMTP(MX_IP, world.smtp_port, local_hostname="client.test", timeout=5) as client:
        assert client.noop()[0] == 250  # smtplib read the whole banner first

    assert banner.decode().split("\r\n") == [
        "220-mx.example.test ESMTP mxprobe simulator",
        "220-This is a simulated mail server: no message is ever delivered",
        "220 mx.example.test ready",
        "",
    ]


def test_a_slow_banner_trickles_out_in_four_pieces(mx_world) -> None:
    world = mx_world(Behaviour(starttls=False, banner_lines=2, slow_banner=PAUSE))
    started = time.monotonic()
    with open_raw(world) as sock:
        pieces = reads_until(sock, 1)
        took = time.monotonic() - started
        sock.sendall(b"NOOP\r\n")
        assert reads_until(sock, 1) == [b"250 OK\r\n"]  # then replies as usual

    banner = b"".join(pieces)
    half = len(banner) // 2
    assert banner == b"220-mx.example.test ESMTP mxprobe simulator\r\n220 mx.example.test ready\r\n"
    assert pieces == [banner[:1], banner[1:half], banner[half:-1], banner[-1:]]
    assert took >= 3 * PAUSE


def test_a_split_session_with_starttls_completes(std: World, connect) -> None:
    client = connect(std, "mx.splittls.test")
    client.ehlo()
    assert client.has_extn("starttls")
    assert client.starttls()[0] == 220  # aiosmtpd's "220 Ready to start TLS", split too
    client.ehlo()
    client.mail("probe@client.test")

    assert client.rcpt("alice@splittls.test")[0] == 250
    assert client.rcpt("carol@splittls.test") == (452, b"4.2.2 <carol@splittls.test>: Mailbox full")


@pytest.mark.parametrize(
    ("host", "address", "code", "text"),
    [
        ("mx.quota.test", "alice@quota.test", 452, "4.2.2 <alice@quota.test>: Mailbox full"),
        (
            "mx.ratelimit.test",
            "alice@ratelimit.test",
            450,
            "4.2.1 The user you are trying to contact is receiving mail\n"
            "4.2.1 at a rate that prevents additional messages from being delivered.",
        ),
        ("mx.flight.test", "carol@flight.test", 452, "4.2.2 <carol@flight.test>: Mailbox full"),
        (
            "mx.flight.test",
            "dave@flight.test",
            450,
            "4.2.1 The user you are trying to contact is receiving mail at a rate that "
            "prevents additional messages from being delivered.",
        ),
        (
            "mx.multiline.test",
            "erin@multiline.test",
            550,
            "5.2.1 <erin@multiline.test>: Mailbox disabled,\n5.2.1 not accepting messages",
        ),
    ],
)
def test_4xx_and_multi_line_mailbox_replies(
    std: World, connect, host: str, address: str, code: int, text: str
) -> None:
    client = connect(std, host)
    client.ehlo()
    client.mail("probe@client.test")

    assert client.rcpt(address) == (code, text.encode())


@pytest.mark.parametrize(
    "options",
    [
        {"segments": "chunked"},
        {"split_pause": -0.1},
        {"slow_banner": -1},
        {"banner_lines": 0},
    ],
)
def test_invalid_delivery_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Behaviour(**options)  # type: ignore[arg-type]
