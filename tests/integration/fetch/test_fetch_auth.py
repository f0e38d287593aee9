"""`user:password@` in the URL: sent as basic auth (percent-decoded, UTF-8), only to the URL's
own origin, and never in a message."""

from __future__ import annotations

import base64

import pytest

from app.fetch import FetchError, open_url, public_url
from tests.fixtures.http_files import HttpFiles, basic_auth, body, redirect, serve_files

LIST = b"a@example.com\nb@example.com\n"
USER = "list reader@corp"
PASSWORD = "p@ss:wörd/?#%"
USERINFO = "list%20reader%40corp:p%40ss%3Aw%C3%B6rd%2F%3F%23%25"
SECRETS = ("p@ss", "p%40ss", "wörd", "w%C3%B6rd", "reader")


def authorization(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def enter(url: str) -> None:
    async with open_url(url, allow_private=True, max_bytes=100):
        pass


async def fetch(url: str) -> bytes:
    async with open_url(url, allow_private=True, max_bytes=1 << 20) as stream:
        return b"".join([piece async for piece in stream])


async def test_credentials_in_the_url_are_sent_as_basic_auth(http_files: HttpFiles) -> None:
    url = http_files.serve("/list.txt", basic_auth(USER, PASSWORD, body(LIST)), userinfo=USERINFO)

    assert await fetch(url) == LIST
    [request] = http_files.requests
    assert request.headers["authorization"] == authorization(USER, PASSWORD)
    assert request.path == "/list.txt"  # not in the request line


async def test_a_user_without_a_password_is_sent_with_an_empty_one(http_files: HttpFiles) -> None:
    url = http_files.serve("/list.txt", basic_auth("reader", "", body(LIST)), userinfo="reader")

    assert await fetch(url) == LIST


async def test_wrong_credentials_are_an_upstream_401_without_the_password(
    http_files: HttpFiles,
) -> None:
    url = http_files.serve("/list.txt", basic_auth(USER, "other", body(LIST)), userinfo=USERINFO)

    with pytest.raises(FetchError) as caught:
        await fetch(url)

    error = caught.value
    assert (error.status, error.upstream_status) == (502, 401)
    for secret in SECRETS:
        assert secret not in error.message
        assert secret not in str(error)
        assert secret not in public_url(url)
    assert public_url(url) == http_files.url("/list.txt")


async def test_credentials_follow_a_redirect_within_the_origin(http_files: HttpFiles) -> None:
    http_files.serve("/list.txt", basic_auth(USER, PASSWORD, body(LIST)))
    url = http_files.serve("/moved", redirect(http_files.url("/list.txt")), userinfo=USERINFO)

    assert await fetch(url) == LIST
    assert [r.headers.get("authorization") for r in http_files.requests] == [
        authorization(USER, PASSWORD)
    ] * 2


async def test_credentials_do_not_follow_a_redirect_to_another_origin(
    http_files: HttpFiles,
) -> None:
    """Another port is another origin (as another host or scheme would be)."""
    with serve_files() as other:
        other.serve("/list.txt", body(LIST))
        url = http_files.serve("/moved", redirect(other.url("/list.txt")), userinfo=USERINFO)

        assert await fetch(url) == LIST

    assert http_files.requests[0].headers["authorization"] == authorization(USER, PASSWORD)
    [request] = other.requests
    assert "authorization" not in request.headers


async def test_a_redirect_may_carry_its_own_credentials(http_files: HttpFiles) -> None:
    with serve_files() as other:
        other.serve("/list.txt", basic_auth("second", "pw", body(LIST)))
        url = http_files.serve(
            "/moved", redirect(other.url("/list.txt", userinfo="second:pw")), userinfo=USERINFO
        )

        assert await fetch(url) == LIST

    assert other.requests[0].headers["authorization"] == authorization("second", "pw")


async def test_no_message_holds_the_credentials(http_files: HttpFiles) -> None:
    """Each way a fetch fails, with credentials in the URL: none of them in the message."""
    http_files.serve("/missing", lambda exchange: exchange.respond(404))
    http_files.serve("/loop", redirect("/loop"))
    http_files.serve("/big", body(LIST * 100))
    urls = [
        http_files.url("/missing", userinfo=USERINFO),
        http_files.url("/loop", userinfo=USERINFO),
        http_files.url("/big", userinfo=USERINFO),
        f"http://{USERINFO}@no-such-host.invalid/list.txt",
        f"ftp://{USERINFO}@127.0.0.1/list.txt",
        f"http://{USERINFO}@127.0.0.1:1/list.txt",
    ]
    for url in urls:
        with pytest.raises(FetchError) as caught:
            await enter(url)
        assert not any(secret in caught.value.message for secret in SECRETS), caught.value
