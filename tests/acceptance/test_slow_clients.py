"""Slow and greedy clients against the real server, `mxprobe serve` as shipped (uvicorn with its
httptools protocol, uvloop), over raw sockets: what lives in the HTTP server cannot be tested
in-process. Half-sent requests are answered 408 and closed once their deadline passes, while
other clients are served; bodies over the limit are cut off however they are sent (a declared
length, a lying one, chunks); oversized headers are a 431; a 400 for bad input keeps the
connection alive."""

from __future__ import annotations

import http.client
import json
import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest

from app.api.limits import CHECK_EMAIL_MAX_BYTES
from app.simulator import World
from tests.conftest import world_env
from tests.fixtures.services import Service, serving

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
MAX_HEADER_BYTES = 8192
SLACK = 1.5
"""How much later than its deadline a connection may be closed (a loaded machine)."""


@pytest.fixture(scope="module")
def server(
    database_url: str,
    template_database: str,
    session_world: World,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Service, str]]:
    env = {
        **world_env(session_world),
        "MXPROBE_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "MXPROBE_HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "MXPROBE_HTTP_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
    }
    logs = tmp_path_factory.mktemp("slow_clients")
    with serving(database_url, template_database, env=env, logs=logs) as (service, base):
        yield service, base
        assert "Traceback" not in service.output(), service.output()


@pytest.fixture
def base(server: tuple[Service, str]) -> Iterator[str]:
    service, url = server
    yield url
    # after every test: still answering
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200, service.output()


def open_socket(base: str) -> socket.socket:
    parts = urlsplit(base)
    assert parts.hostname is not None
    assert parts.port is not None
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def request(
    method: str, path: str, body: bytes = b"", *, headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    given = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    given.update(headers or {})
    lines += [f"{name}: {value}" for name, value in given.items()]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> str:
        parsed = json.loads(self.body)
        assert set(parsed) == {"error"}, parsed
        return str(parsed["error"])


def read_answer(sock: socket.socket, *, timeout: float = 10) -> Answer:
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return Answer(response.status, headers, body)


def closed(sock: socket.socket, *, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def send_all_you_can(sock: socket.socket, data: bytes) -> int:
    """Send until done or the server hangs up: the bytes it took."""
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent : sent + 65536])
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


# ---- slow clients ------------------------------------------------------------------------------


@dataclass
class HalfSent:
    kind: str
    sock: socket.socket
    sent_at: float
    data: bytes = b""
    closed_at: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


def half_send(base: str, kind: str) -> HalfSent:
    sock = open_socket(base)
    if kind == "partial headers":
        sock.sendall(b"POST /v0/check_email HTTP/1.1\r\nHost: test\r\nContent-Le")
    elif kind == "partial body":
        sock.sendall(request("POST", "/v0/check_email", headers={"Content-Length": "100"}))
        sock.sendall(b'{"to_email"')
    else:  # "nothing": connected, silent
        pass
    return HalfSent(kind, sock, time.monotonic())


def wait_until_closed(clients: list[HalfSent], *, within: float) -> None:
    with selectors.DefaultSelector() as selector:
        for client in clients:
            client.sock.setblocking(False)
            selector.register(client.sock, selectors.EVENT_READ, client)
        deadline = time.monotonic() + within
        open_ = len(clients)
        while open_ and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                client = key.data
                try:
                    chunk = client.sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    client.data += chunk
                else:
                    client.closed_at = time.monotonic()
                    selector.unregister(client.sock)
                    open_ -= 1


def test_fifty_half_sent_requests_are_closed_in_time_and_others_are_served_meanwhile(
    base: str,
) -> None:
    kinds = ["partial headers"] * 20 + ["partial body"] * 20 + ["nothing"] * 10
    clients = [half_send(base, kind) for kind in kinds]
    try:
        started = time.monotonic()
        meanwhile = httpx.post(f"{base}/v0/check_email", json={"to_email": "foo@bar"}, timeout=10)
        answered_at = time.monotonic()
        wait_until_closed(clients, within=max(HEADER_TIMEOUT, BODY_TIMEOUT) + SLACK + 5)
    finally:
        for client in clients:
            client.sock.close()

    assert meanwhile.status_code == 200
    assert meanwhile.json()["is_reachable"] == "invalid"
    assert answered_at - started < min(HEADER_TIMEOUT, BODY_TIMEOUT)
    late = {
        (client.kind, round(client.closed_at - client.sent_at, 2) if client.closed_at else None)
        for client in clients
        if client.closed_at is None
        or not HEADER_TIMEOUT - 0.2 <= client.closed_at - client.sent_at <= HEADER_TIMEOUT + SLACK
    }
    assert not late, late
    for client in clients:
        head, _, body = client.data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), (client.kind, client.data)
        assert b"connection: close" in head.lower()
        if client.kind == "partial body":
            expected = f"request body not received within {BODY_TIMEOUT:g} s"
        else:
            expected = f"request headers not received within {HEADER_TIMEOUT:g} s"
        assert json.loads(body) == {"error": expected}
    # and afterwards
    after = httpx.post(f"{base}/v0/check_email", json={"to_email": "foo@bar"}, timeout=10)
    assert after.status_code == 200


def test_a_request_sent_slowly_but_in_time_is_answered(base: str) -> None:
    data = request("POST", "/v0/check_email", b'{"to_email": "foo@bar"}')
    with open_socket(base) as sock:
        for start in range(0, len(data), len(data) // 4 + 1):
            sock.sendall(data[start : start + len(data) // 4 + 1])
            time.sleep(HEADER_TIMEOUT / 8)
        answer = read_answer(sock)

    assert answer.status == 200


def test_keep_alive_connections_idle_between_requests_are_closed(base: str) -> None:
    with open_socket(base) as sock:
        sock.sendall(request("GET", "/version"))
        assert read_answer(sock).status == 200
        started = time.monotonic()
        assert closed(sock, within=5 + SLACK + 1)  # uvicorn's timeout_keep_alive, 5 s

    assert time.monotonic() - started >= 4.5


def test_headers_over_the_limit_are_a_431(base: str) -> None:
    huge = {f"X-Pad-{n}": "a" * 1000 for n in range(MAX_HEADER_BYTES // 1000 + 1)}
    with open_socket(base) as sock:
        send_all_you_can(sock, request("GET", "/version", headers=huge))
        answer = read_answer(sock)
        assert closed(sock, within=5)

    assert answer.status == 431
    assert answer.error() == f"request headers are larger than {MAX_HEADER_BYTES} bytes"


def test_twenty_megabytes_of_headers_are_not_read(base: str) -> None:
    with open_socket(base) as sock:
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: test\r\n")
        sent = send_all_you_can(sock, (b"X-A: " + b"a" * 10_000 + b"\r\n") * 2000)
        answer = read_answer(sock)

    assert answer.status == 431
    assert sent < 20_000_000


# ---- body limits on the wire -------------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(base: str) -> None:
    with open_socket(base) as sock:
        started = time.monotonic()
        sock.sendall(
            request("POST", "/v0/check_email", headers={"Content-Length": str(200 * 1024**2)})
        )
        answer = read_answer(sock)
        assert closed(sock, within=5)

    assert time.monotonic() - started < BODY_TIMEOUT
    assert answer.status == 413
    assert answer.error() == (
        f"request body is larger than {CHECK_EMAIL_MAX_BYTES} bytes, "
        "the limit of POST /v0/check_email"
    )
    assert answer.headers["connection"] == "close"


def test_a_content_length_that_lies_low_only_shortens_the_body(base: str) -> None:
    """uvicorn hands over the declared bytes and no more: the body is cut (invalid JSON, 400)
    and what follows is not HTTP (400 from the server, closed)."""
    body = b'{"to_email": "' + b"a" * 1024 * 1024 + b'@x.test"}'
    with open_socket(base) as sock:
        send_all_you_can(
            sock, request("POST", "/v0/check_email", body, headers={"Content-Length": "20"})
        )
        answer = read_answer(sock)
        assert closed(sock, within=5)

    assert answer.status == 400


def chunked(body: bytes, *, size: int) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def chunked_request(path: str) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    return head.encode() + b"Transfer-Encoding: chunked\r\n\r\n"


def test_a_chunked_body_within_the_limit_is_read(base: str) -> None:
    with open_socket(base) as sock:
        sock.sendall(chunked_request("/v0/check_email"))
        sock.sendall(chunked(b'{"to_email":    "foo@bar"}', size=7))
        answer = read_answer(sock)

    assert answer.status == 200
    assert json.loads(answer.body)["input"] == "foo@bar"


def test_a_chunked_body_over_the_limit_is_cut_off(base: str) -> None:
    body = b'{"to_email": "foo@bar"' + b" " * 10 * 1024 * 1024 + b"}"
    with open_socket(base) as sock:
        sock.sendall(chunked_request("/v0/check_email"))
        sent = send_all_you_can(sock, chunked(body, size=4096))
        answer = read_answer(sock)
        assert closed(sock, within=5)

    assert answer.status == 413
    assert f"larger than {CHECK_EMAIL_MAX_BYTES} bytes" in answer.error()
    assert sent < len(body)


def test_a_lone_surrogate_is_a_400_and_the_connection_stays_open(base: str) -> None:
    with open_socket(base) as sock:
        sock.sendall(request("POST", "/v0/check_email", b'{"to_email": "\\ud800abc@example.com"}'))
        first = read_answer(sock)
        sock.sendall(request("GET", "/version"))
        second = read_answer(sock)

    assert first.status == 400
    assert first.error() == "to_email: is not valid Unicode (a lone surrogate)"
    assert "connection" not in first.headers
    assert second.status == 200


def test_deeply_nested_json_is_a_400_and_the_connection_stays_open(base: str) -> None:
    with open_socket(base) as sock:
        sock.sendall(request("POST", "/v0/bulk", b"[" * 100_000))
        first = read_answer(sock)
        sock.sendall(request("GET", "/version"))
        second = read_answer(sock)

    assert first.status == 400
    assert first.error() == "request body is not valid JSON: nested too deeply"
    assert second.status == 200
