"""Greylisting, STARTTLS, pipelining and the recorder's view of a session."""

from __future__ import annotations

import socket
import ssl
import time

from app.simulator import Behaviour, World


def test_greylisting_defers_each_triplet_until_the_delay_has_passed(connect, std: World):
    client = connect(std, "mx.greylist.test")
    client.ehlo()
    client.mail("probe@client.test")
    code, text = client.rcpt("alice@greylist.test")
    assert code == 451
    assert text.startswith(b"4.7.1 ")
    assert b"Greylisted" in text
    assert client.rcpt("alice@greylist.test")[0] == 451  # too early: still greylisted
    assert client.rcpt("carol@greylist.test")[0] == 451  # unknown users are greylisted too
    time.sleep(0.35)
    assert client.rcpt("alice@greylist.test")[0] == 250
    assert client.rcpt("carol@greylist.test")[0] == 550
    assert client.rcpt("dave@greylist.test")[0] == 451  # a new triplet
    client.rset()
    client.mail("other-sender@client.test")
    assert client.rcpt("alice@greylist.test")[0] == 451  # a new MAIL FROM: a new triplet


def test_greylisting_remembers_triplets_across_connections(connect, std: World):
    first = connect(std, "mx.greylist.test")
    first.ehlo()
    first.mail("probe@client.test")
    assert first.rcpt("alice@greylist.test")[0] == 451
    first.quit()
    time.sleep(0.35)
    second = connect(std, "mx.greylist.test")
    second.ehlo()
    second.mail("PROBE@client.test")
    assert second.rcpt("Alice@greylist.test")[0] == 250


def test_starttls_is_required_then_accepted(connect, std: World):
    client = connect(std, "mx.tls.test")
    client.ehlo()
    assert client.has_extn("starttls")
    assert client.mail("probe@client.test") == (
        530,
        b"5.7.0 Must issue a STARTTLS command first",
    )
    assert client.starttls(context=ssl._create_unverified_context())[0] == 220
    client.ehlo()
    assert not client.has_extn("starttls")
    assert client.mail("probe@client.test")[0] == 250
    assert client.rcpt("alice@tls.test")[0] == 250
    assert client.rcpt("carol@tls.test")[0] == 550


def test_certificate_verifies_against_the_world_ca(connect, std: World):
    context = ssl.create_default_context(cadata=std.ca_pem.decode())
    context.check_hostname = False  # the client connects by IP; the chain is still verified
    client = connect(std, "mx.tls.test")
    client.ehlo()
    assert client.starttls(context=context)[0] == 220
    assert client.sock is not None
    cert = client.sock.getpeercert()
    names = {value for kind, value in cert["subjectAltName"]}
    assert "mx.tls.test" in names


def read_replies(sock: socket.socket, count: int) -> list[str]:
    """Read `count` complete replies (multi-line ones joined), in the order received."""
    buffer = b""
    replies: list[str] = []
    current: list[str] = []
    while len(replies) < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {replies}"
        buffer += chunk
        while b"\r\n" in buffer:
            line, buffer = buffer.split(b"\r\n", 1)
            current.append(line.decode())
            if line[3:4] != b"-":
                replies.append("\n".join(current))
                current = []
    return replies


def test_pipelined_commands_get_their_replies_in_order(std: World):
    with socket.create_connection((std.mx_ip("mx.normal.test"), std.smtp_port), timeout=5) as s:
        assert read_replies(s, 1)[0].startswith("220 ")
        s.sendall(b"EHLO client.test\r\n")
        assert "250-PIPELINING" in read_replies(s, 1)[0]
        s.sendall(
            b"MAIL FROM:<probe@client.test>\r\n"
            b"RCPT TO:<alice@normal.test>\r\n"
            b"RCPT TO:<carol@normal.test>\r\n"
            b"RCPT TO:<bob@normal.test>\r\n"
            b"RSET\r\n"
            b"QUIT\r\n"
        )
        replies = [reply.split(" ", 1)[0] for reply in read_replies(s, 6)]
    assert replies == ["250", "250", "550", "250", "250", "221"]
    recorder = std.recorder("mx.normal.test")
    assert recorder.rcpt_count == 3
    assert recorder.round_trips == 3  # the banner, EHLO, and one flight of six commands
    assert [line for _, line in recorder.commands][2:5] == [
        "RCPT TO:<alice@normal.test>",
        "RCPT TO:<carol@normal.test>",
        "RCPT TO:<bob@normal.test>",
    ]


def test_recorder_counts_commands_replies_and_connections(connect, mx_world, settled):
    world = mx_world(Behaviour())
    for _ in range(2):
        client = connect(world)
        client.ehlo()
        client.mail("probe@client.test")
        client.rcpt("alice@example.test")
        client.rcpt("nobody@example.test")
        client.quit()
    recorder = world.recorder("MX.Example.Test")
    settled(lambda: recorder.active == 0)
    assert recorder.connections == 2
    assert recorder.peak_connections == 1
    assert recorder.rcpt_count == 4
    assert recorder.count("MAIL") == 2
    assert recorder.data_commands == 0
    assert recorder.round_trips == 2 * 6  # banner, EHLO, MAIL, RCPT, RCPT, QUIT
    assert {connection for connection, _ in recorder.commands} == {1, 2}
    assert recorder.commands[0] == (1, "ehlo client.test")
    assert world.recorders == {"mx.example.test": recorder}
    world.reset_recorders()
    assert (recorder.connections, recorder.rcpt_count, recorder.round_trips) == (0, 0, 0)
