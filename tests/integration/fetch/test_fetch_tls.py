"""https: the connection goes to the checked IP, and the URL's host name is the TLS server name
(SNI) and the name the certificate must carry. Real TLS on 127.0.0.1 with a trustme CA."""

from __future__ import annotations

import pytest

from app.fetch import FetchError, open_url
from tests.fixtures.http_files import HttpFiles, body, gzip_body, redirect, serve_files

LIST = b"a@example.com\nb@example.com\n"


async def fetch(url: str, files: HttpFiles) -> bytes:
    async with open_url(
        url, allow_private=True, max_bytes=1 << 20, verify=files.client_ssl_context()
    ) as stream:
        return b"".join([piece async for piece in stream])


async def test_the_host_name_is_the_server_name_while_the_ip_is_connected_to() -> None:
    """The certificate names only `localhost`, not 127.0.0.1, the address connected to: it is
    accepted because the name checked is the URL's."""
    with serve_files(tls=True, cert_names=["localhost"]) as files:
        url = files.serve("/list.txt", gzip_body(LIST), host="localhost")

        assert await fetch(url, files) == LIST

    assert files.sni_names == ["localhost"]
    [request] = files.requests
    assert request.headers["host"] == f"localhost:{files.port}"
    assert request.peer == "127.0.0.1"


async def test_a_certificate_for_another_name_is_refused() -> None:
    with serve_files(tls=True, cert_names=["files.example"]) as files:
        url = files.serve("/list.txt", body(LIST), host="localhost")

        with pytest.raises(FetchError) as caught:
            await fetch(url, files)

    assert caught.value.status == 502
    assert caught.value.message.startswith(
        f"cannot connect to localhost:{files.port}: TLS certificate not accepted: "
    )
    assert "localhost" in caught.value.message.partition("accepted: ")[2]
    assert files.requests == []


async def test_an_ip_url_needs_a_certificate_for_the_ip() -> None:
    with serve_files(tls=True, cert_names=["localhost"]) as files:
        url = files.serve("/list.txt", body(LIST))

        with pytest.raises(FetchError, match="TLS certificate not accepted") as caught:
            await fetch(url, files)

    assert caught.value.status == 502
    assert files.sni_names == [None]  # no SNI for an address


async def test_an_unknown_ca_is_refused_by_default(tls_http_files: HttpFiles) -> None:
    """`verify=True`, the default: the system's CAs, which do not know the test CA."""
    url = tls_http_files.serve("/list.txt", body(LIST), host="localhost")

    with pytest.raises(FetchError, match="TLS certificate not accepted") as caught:
        async with open_url(url, allow_private=True, max_bytes=1 << 20):
            pytest.fail("entered")
    assert caught.value.status == 502
    assert tls_http_files.requests == []


async def test_each_redirect_hop_gets_its_own_server_name(tls_http_files: HttpFiles) -> None:
    tls_http_files.serve("/list.txt", body(LIST))
    url = tls_http_files.serve(
        "/moved", redirect(tls_http_files.url("/list.txt")), host="localhost"
    )

    assert await fetch(url, tls_http_files) == LIST
    assert tls_http_files.sni_names == ["localhost", None]
    assert [r.headers["host"] for r in tls_http_files.requests] == [
        f"localhost:{tls_http_files.port}",
        f"127.0.0.1:{tls_http_files.port}",
    ]
