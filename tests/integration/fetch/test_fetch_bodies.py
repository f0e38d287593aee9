"""What `open_url` yields: the body's bytes, with Content-Encoding undone and nothing else."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.fetch import FetchError, open_url
from tests.fixtures.http_files import (
    Framing,
    HttpFiles,
    body,
    chunks,
    deflate_body,
    encoded_body,
    gzip_body,
)

LIST = b"".join(b"user%d@example.com\r\n" % i for i in range(1000))


async def fetch(url: str, **options: Any) -> bytes:
    options.setdefault("allow_private", True)
    options.setdefault("max_bytes", 1 << 30)
    async with open_url(url, **options) as stream:
        return b"".join([piece async for piece in stream])


async def read_into(stream: AsyncIterator[bytes], got: bytearray) -> None:
    async for piece in stream:
        got += piece


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
async def test_a_newline_list_comes_through_as_sent(
    http_files: HttpFiles, framing: Framing
) -> None:
    url = http_files.serve("/list.txt", body(LIST, framing=framing))

    assert await fetch(url) == LIST
    [request] = http_files.requests
    assert request.method == "GET"
    assert request.path == "/list.txt"
    assert request.headers["host"] == f"127.0.0.1:{http_files.port}"
    assert request.headers["accept-encoding"] == "gzip, deflate"
    assert "authorization" not in request.headers


async def test_the_host_header_names_the_host_while_the_connection_goes_to_its_address(
    http_files: HttpFiles,
) -> None:
    url = http_files.serve("/list.txt", body(LIST), host="localhost")

    assert await fetch(url) == LIST
    [request] = http_files.requests
    assert request.headers["host"] == f"localhost:{http_files.port}"
    assert request.peer == "127.0.0.1"


async def test_the_query_is_sent_and_the_fragment_is_not(http_files: HttpFiles) -> None:
    http_files.serve("/list.txt", body(LIST))

    assert await fetch(http_files.url("/list.txt?token=a%20b&x=1#part")) == LIST
    assert [r.path for r in http_files.requests] == ["/list.txt?token=a%20b&x=1"]


async def test_an_empty_body_is_an_empty_stream(http_files: HttpFiles) -> None:
    url = http_files.serve("/empty.txt", body(b""))

    assert await fetch(url) == b""


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
async def test_gzip_content_encoding_is_undone(http_files: HttpFiles, framing: Framing) -> None:
    url = http_files.serve("/list.txt", gzip_body(LIST, framing=framing))

    assert await fetch(url) == LIST


async def test_a_large_gzip_body_is_undone_in_bounded_pieces(http_files: HttpFiles) -> None:
    big = b"".join(b"someone.%07d@example.com\n" % i for i in range(300_000))  # ~7.8 MB
    url = http_files.serve("/big.txt", gzip_body(big))

    async with open_url(url, allow_private=True, max_bytes=1 << 30) as stream:
        pieces = [piece async for piece in stream]
    assert b"".join(pieces) == big
    assert max(len(p) for p in pieces) <= 64 * 1024


async def test_a_gzip_body_of_several_members_is_undone_whole(http_files: HttpFiles) -> None:
    members = gzip.compress(LIST[:5000]) + gzip.compress(LIST[5000:])
    url = http_files.serve("/list.txt", encoded_body(members, "gzip"))

    assert await fetch(url) == LIST


@pytest.mark.parametrize("raw", [False, True], ids=["zlib", "raw-deflate"])
async def test_deflate_content_encoding_is_undone(http_files: HttpFiles, raw: bool) -> None:
    url = http_files.serve("/list.txt", deflate_body(LIST, raw=raw))

    assert await fetch(url) == LIST


async def test_a_gz_file_served_as_is_stays_compressed(http_files: HttpFiles) -> None:
    """No Content-Encoding: the bytes are the file's, for the parser to sniff and inflate."""
    packed = gzip.compress(LIST)
    url = http_files.serve("/list.txt.gz", body(packed, content_type="application/gzip"))

    got = await fetch(url)
    assert got == packed
    assert gzip.decompress(got) == LIST


async def test_a_gzip_body_cut_short_is_an_error(http_files: HttpFiles) -> None:
    packed = gzip.compress(LIST)
    url = http_files.serve("/list.txt", encoded_body(packed[:-40], "gzip", framing="close"))

    with pytest.raises(FetchError, match="does not decompress") as caught:
        await fetch(url)
    assert caught.value.status == 502


async def test_a_body_that_is_not_gzip_is_an_error(http_files: HttpFiles) -> None:
    url = http_files.serve("/list.txt", encoded_body(LIST, "gzip"))

    with pytest.raises(FetchError, match="does not decompress") as caught:
        await fetch(url)
    assert caught.value.status == 502


async def test_an_encoding_we_did_not_ask_for_is_refused_before_the_body(
    http_files: HttpFiles,
) -> None:
    url = http_files.serve("/list.txt", encoded_body(b"\x8b\x00whatever", "br"))

    with pytest.raises(FetchError, match="unsupported Content-Encoding: br") as caught:
        async with open_url(url, allow_private=True, max_bytes=1 << 20):
            pytest.fail("entered")
    assert caught.value.status == 502


async def test_a_gzip_bomb_stops_at_the_byte_limit_after_little_was_inflated(
    http_files: HttpFiles,
) -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    bomb = b"".join(compressor.compress(b"\n" * (1 << 20)) for _ in range(50))
    bomb += compressor.flush()  # 50 MiB of newlines in about 50 KB
    assert len(bomb) < 100_000
    url = http_files.serve("/bomb.txt", encoded_body(bomb, "gzip"))

    got = bytearray()
    async with open_url(url, allow_private=True, max_bytes=1 << 20) as stream:
        with pytest.raises(FetchError, match="larger than the limit of 1048576 bytes") as caught:
            await read_into(stream, got)
    assert caught.value.status == 413
    assert len(got) <= 1 << 20
    assert got == b"\n" * len(got)


async def test_a_large_generated_body_streams(http_files: HttpFiles) -> None:
    lines = 50_000
    url = http_files.serve(
        "/generated.txt", chunks(lambda: (b"a%06d@example.com\n" % i for i in range(lines)))
    )

    count = 0
    tail = b""
    async with open_url(url, allow_private=True, max_bytes=1 << 30) as stream:
        async for piece in stream:
            count += piece.count(b"\n")
            tail = (tail + piece)[-64:]
    assert count == lines
    assert tail.endswith(b"a%06d@example.com\n" % (lines - 1))
