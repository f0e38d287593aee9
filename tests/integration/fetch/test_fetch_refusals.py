"""What `open_url` refuses before connecting: schemes, hosts, non-public addresses (of the URL
and of every redirect), long redirect chains. To test the public-address check without the
internet, `is_public` calls 127.0.0.2 public and every other address not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.fetch import FetchError, open_url
from tests.fixtures.http_files import HttpFiles, body, redirect, serve_files

LIST = b"a@example.com\nb@example.com\n"


def only_127_0_0_2(address: str) -> bool:
    return address == "127.0.0.2"


@pytest.fixture
def public_files() -> Iterator[HttpFiles]:
    """A file server on 127.0.0.2, the address the tests call public."""
    with serve_files(host="127.0.0.2") as files:
        yield files


async def fetch(url: str, **options: object) -> bytes:
    async with open_url(url, max_bytes=1 << 20, **options) as stream:  # type: ignore[arg-type]
        return b"".join([piece async for piece in stream])


async def refused(url: str, **options: object) -> FetchError:
    options.setdefault("allow_private", False)
    options.setdefault("is_public", only_127_0_0_2)
    with pytest.raises(FetchError) as caught:
        async with open_url(url, max_bytes=1 << 20, **options):  # type: ignore[arg-type]
            pytest.fail("open_url should have refused")
    return caught.value


async def test_a_public_address_is_fetched(public_files: HttpFiles) -> None:
    url = public_files.serve("/list.txt", body(LIST))

    assert await fetch(url, allow_private=False, is_public=only_127_0_0_2) == LIST


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",  # a name that resolves to loopback
        "2130706433",  # 127.0.0.1 as one number: the resolver's answer is what is checked
        "0x7f.1",
        "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
        "[::1]",
        "0.0.0.0",
    ],
)
async def test_a_non_public_host_is_refused_before_any_connection(
    http_files: HttpFiles, host: str
) -> None:
    http_files.serve("/list.txt", body(LIST))

    error = await refused(f"http://{host}:{http_files.port}/list.txt")

    assert error.status == 400
    assert "non-public" in error.message
    assert http_files.requests == []


async def test_the_real_check_refuses_loopback(http_files: HttpFiles) -> None:
    """The default `is_public` is the engine's `is_public_address`."""
    url = http_files.serve("/list.txt", body(LIST))

    with pytest.raises(FetchError, match="non-public") as caught:
        async with open_url(url, allow_private=False, max_bytes=1 << 20):
            pytest.fail("entered")
    assert caught.value.status == 400
    assert http_files.requests == []


async def test_allow_private_fetches_loopback(http_files: HttpFiles) -> None:
    url = http_files.serve("/list.txt", body(LIST))

    assert await fetch(url, allow_private=True) == LIST


async def test_a_redirect_to_a_private_address_is_refused(
    public_files: HttpFiles, http_files: HttpFiles
) -> None:
    private_url = http_files.serve("/list.txt", body(LIST))
    url = public_files.serve("/moved", redirect(private_url))

    error = await refused(url)

    assert error.status == 400
    assert "non-public" in error.message
    assert [r.path for r in public_files.requests] == ["/moved"]
    assert http_files.requests == []  # never connected to


async def test_a_redirect_to_a_public_address_is_followed(public_files: HttpFiles) -> None:
    public_files.serve("/list.txt", body(LIST))
    url = public_files.serve("/moved", redirect("/list.txt", status=301))

    assert await fetch(url, allow_private=False, is_public=only_127_0_0_2) == LIST
    assert [r.path for r in public_files.requests] == ["/moved", "/list.txt"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_every_redirect_status_is_followed(http_files: HttpFiles, status: int) -> None:
    http_files.serve("/list.txt", body(LIST))
    url = http_files.serve("/moved", redirect(http_files.url("/list.txt"), status=status))

    assert await fetch(url, allow_private=True) == LIST


def chain(files: HttpFiles, length: int) -> str:
    """/r0 → /r1 → ... → /r{length} (the list): `length` redirects."""
    files.serve(f"/r{length}", body(LIST))
    for hop in range(length):
        files.serve(f"/r{hop}", redirect(f"/r{hop + 1}"))
    return files.url("/r0")


async def test_five_redirects_are_followed(http_files: HttpFiles) -> None:
    assert await fetch(chain(http_files, 5), allow_private=True, max_redirects=5) == LIST
    assert len(http_files.requests) == 6


async def test_a_sixth_redirect_is_refused(http_files: HttpFiles) -> None:
    error = await refused(chain(http_files, 6), allow_private=True, max_redirects=5)

    assert error.status == 502
    assert "more than 5 redirects" in error.message
    assert error.upstream_status == 302
    assert [r.path for r in http_files.requests] == [f"/r{i}" for i in range(6)]


async def test_a_redirect_loop_ends(http_files: HttpFiles) -> None:
    url = http_files.serve("/loop", redirect("/loop"))

    error = await refused(url, allow_private=True)

    assert error.status == 502
    assert len(http_files.requests) == 6


@pytest.mark.parametrize(
    "location", ["ftp://127.0.0.1/list.txt", "file:///etc/passwd", "gopher://127.0.0.1:70/"]
)
async def test_a_redirect_to_another_scheme_is_refused(
    http_files: HttpFiles, location: str
) -> None:
    url = http_files.serve("/moved", redirect(location))

    error = await refused(url, allow_private=True)

    assert error.status == 400
    assert "http:// or https://" in error.message
    assert "redirect" in error.message


async def test_a_redirect_without_a_location_is_an_upstream_error(
    http_files: HttpFiles,
) -> None:
    url = http_files.serve("/moved", lambda exchange: exchange.respond(302))

    error = await refused(url, allow_private=True)

    assert error.status == 502
    assert "without a Location" in error.message


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/list.txt",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_GET",
        "FILE:///etc/passwd",
        "javascript:alert(1)",
        "127.0.0.1/list.txt",
        "//127.0.0.1/list.txt",
        "",
    ],
)
async def test_only_http_and_https_are_fetched(url: str) -> None:
    error = await refused(url, allow_private=True)

    assert error.status == 400
    assert "http:// or https://" in error.message


@pytest.mark.parametrize("url", ["http:///list.txt", "http://", "https://:443/x"])
async def test_a_url_without_a_host_is_refused(url: str) -> None:
    error = await refused(url, allow_private=True)

    assert error.status == 400


async def test_an_invalid_url_is_refused() -> None:
    error = await refused("http://exa\x00mple.com/", allow_private=True)

    assert error.status == 400
    assert error.message == "the URL is not valid"


async def test_an_unresolvable_host_is_a_bad_request() -> None:
    error = await refused("http://no-such-host.invalid/list.txt", allow_private=True)

    assert error.status == 400
    assert error.message == "cannot resolve host no-such-host.invalid"


async def test_a_closed_port_is_an_upstream_error() -> None:
    with serve_files() as files:
        url = files.url("/list.txt")
    # the server is gone: nothing listens on its port

    error = await refused(url, allow_private=True)

    assert error.status == 502
    assert error.message.startswith(f"cannot connect to 127.0.0.1:{files.port}: ")
