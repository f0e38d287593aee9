"""What goes wrong once a server is reached: error statuses, stalls, dropped connections, and
bodies over the byte limit, before the body (FetchError on entering) or while it streams."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest

from app.fetch import FetchError, open_url
from tests.fixtures.http_files import (
    Exchange,
    Framing,
    HttpFiles,
    body,
    chunks,
    drop,
    silent,
    stall,
    status,
)

LIST = b"".join(b"user%d@example.com\n" % i for i in range(100))


async def failure_on_entering(url: str, **options: object) -> FetchError:
    options.setdefault("max_bytes", 1 << 20)
    with pytest.raises(FetchError) as caught:
        async with open_url(url, allow_private=True, **options):  # type: ignore[arg-type]
            pytest.fail("open_url should have failed before the body")
    return caught.value


async def failure_while_streaming(url: str, **options: object) -> tuple[FetchError, bytes]:
    """The error the stream raised, and the bytes it yielded before."""
    got = bytearray()
    options.setdefault("max_bytes", 1 << 20)
    async with open_url(url, allow_private=True, **options) as stream:  # type: ignore[arg-type]
        with pytest.raises(FetchError) as caught:
            await read_into(stream, got)
    return caught.value, bytes(got)


async def read_into(stream: AsyncIterator[bytes], got: bytearray) -> None:
    async for piece in stream:
        got += piece


@pytest.mark.parametrize(
    ("code", "phrase"), [(404, "Not Found"), (500, "Internal Server Error"), (403, "Forbidden")]
)
async def test_an_error_status_names_the_upstream_status(
    http_files: HttpFiles, code: int, phrase: str
) -> None:
    url = http_files.serve("/list.txt", status(code, b"nope"))

    error = await failure_on_entering(url)

    assert error.status == 502
    assert error.upstream_status == code
    assert error.message == f"127.0.0.1:{http_files.port} answered HTTP {code} {phrase}"


async def test_a_path_with_no_file_is_a_404(http_files: HttpFiles) -> None:
    error = await failure_on_entering(http_files.url("/nothing-here.txt"))

    assert (error.status, error.upstream_status) == (502, 404)


async def test_a_stall_mid_body_ends_the_stream_after_the_read_timeout(
    http_files: HttpFiles,
) -> None:
    url = http_files.serve("/list.txt", stall(LIST, declared_length=len(LIST) * 10))

    started = time.monotonic()
    error, got = await failure_while_streaming(url, read_timeout=0.3)

    assert time.monotonic() - started < 5
    assert got == LIST
    assert error.status == 502
    assert error.message == (
        f"127.0.0.1:{http_files.port} sent nothing for 0.3 s, after {len(LIST)} bytes"
    )


async def test_a_stall_in_a_chunked_body_ends_the_stream(http_files: HttpFiles) -> None:
    url = http_files.serve("/list.txt", stall(LIST))

    error, got = await failure_while_streaming(url, read_timeout=0.3)

    assert got == LIST
    assert error.status == 502
    assert "sent nothing for 0.3 s" in error.message


async def test_a_server_that_never_answers_times_out_on_entering(http_files: HttpFiles) -> None:
    url = http_files.serve("/list.txt", silent())

    started = time.monotonic()
    error = await failure_on_entering(url, read_timeout=0.3)

    assert time.monotonic() - started < 5
    assert error.status == 502
    assert error.message == f"127.0.0.1:{http_files.port} sent no answer in time"


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_dropped_connection_ends_the_stream(
    http_files: HttpFiles, reset: bool, declared: bool
) -> None:
    length = len(LIST) * 10 if declared else None
    url = http_files.serve("/list.txt", drop(LIST, declared_length=length, reset=reset))

    error, got = await failure_while_streaming(url)

    assert error.status == 502
    assert error.message.startswith(f"the connection to 127.0.0.1:{http_files.port} broke after")
    assert LIST.startswith(got)  # an RST may discard what was in flight


async def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    http_files: HttpFiles,
) -> None:
    url = http_files.serve("/list.txt", body(LIST))

    error = await failure_on_entering(url, max_bytes=len(LIST) - 1)

    assert error.status == 413
    assert error.message == f"the file is larger than the limit of {len(LIST) - 1} bytes"


async def test_a_body_of_exactly_the_limit_is_fetched(http_files: HttpFiles) -> None:
    http_files.serve("/a", body(LIST))
    http_files.serve("/b", body(LIST, framing="chunked"))

    for path in ("/a", "/b"):
        async with open_url(http_files.url(path), allow_private=True, max_bytes=len(LIST)) as s:
            assert b"".join([piece async for piece in s]) == LIST


@pytest.mark.parametrize("framing", ["chunked", "close"])
async def test_an_undeclared_body_over_the_limit_ends_the_stream(
    http_files: HttpFiles, framing: Framing
) -> None:
    line = b"someone@example.com\n"
    url = http_files.serve(
        "/endless.txt",
        chunks(lambda: (line * 100 for _ in range(10_000)), framing=framing),  # ~20 MB
    )

    error, got = await failure_while_streaming(url, max_bytes=100_000)

    assert error.status == 413
    assert error.message == "the file is larger than the limit of 100000 bytes"
    assert len(got) <= 100_000


async def test_leaving_early_closes_the_connection(http_files: HttpFiles) -> None:
    """A reader that stops (the address limit was reached) leaves nothing open: the server,
    still writing, sees its connection go."""
    gone = threading.Event()

    def endless(exchange: Exchange) -> None:
        exchange.send_head(200, {"Content-Length": str(1 << 40)})
        try:
            while not exchange.wait(0.01):
                exchange.write(LIST)
        except OSError:
            gone.set()

    url = http_files.serve("/endless.txt", endless)

    async with open_url(url, allow_private=True, max_bytes=1 << 50) as stream:
        async for piece in stream:
            assert piece
            break
    assert await asyncio.to_thread(gone.wait, 5)
