"""The web page's routes, in process (no database: the pages never read one): open with
MXPROBE_HEADER_SECRET like the documentation, while everything else stays guarded; what the
pages are told of the settings; the headers that keep strangers' text from running as script.
The page itself is tested in a browser (tests/acceptance/test_web_page.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from app.api.main import create_app
from app.settings import Settings
from app.web import pages

Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
PAGES = ("/", "/jobs", "/jobs/1", "/jobs/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
STATIC = ("/static/api.js", "/static/home.js", "/static/job.js", "/static/mxprobe.css")


@pytest.fixture
def client_with() -> Client:
    @asynccontextmanager
    async def connect(**settings: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(Settings(database_url="postgresql+asyncpg://unused/unused", **settings))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client

    return connect


async def test_with_a_secret_the_pages_are_open_and_the_api_is_not(client_with: Client) -> None:
    async with client_with(header_secret="s3cret") as client:
        opened = {path: (await client.get(path)).status_code for path in PAGES + STATIC}
        guarded = [
            await client.get("/v0/bulk"),
            await client.get("/v0/bulk/1"),
            await client.get("/v0/bulk/1/download"),
            await client.get("/jobsx"),
            await client.get("/nowhere"),
        ]
        posted = await client.post("/jobs/1", content=b"")

    assert opened == dict.fromkeys(PAGES + STATIC, 200)
    for response in guarded:
        assert response.status_code == 401, response.request.url
        assert response.json() == {"error": "missing x-reacher-secret header"}
    assert posted.status_code == 405  # a page only reads


async def test_a_page_says_what_the_server_requires(client_with: Client) -> None:
    async with client_with(
        header_secret="s3cret",
        require_job_token=True,
        proxies={"eu": "socks5://10.1.0.5:1080", "us": "socks5://10.2.0.5:1080"},
    ) as client:
        home = (await client.get("/")).text
    async with client_with() as client:
        plain = (await client.get("/")).text

    assert 'data-secret-required="true"' in home
    assert 'data-job-token-required="true"' in home
    assert re.findall(r'<option value="([^"]*)">', home) == ["", "eu", "us"]
    assert 'id="change-secret"' in home
    assert "s3cret" not in home
    assert "10.1.0.5" not in home
    assert 'data-secret-required="false"' in plain
    assert 'id="change-secret"' not in plain
    assert '<select id="proxy" name="proxy" aria-describedby="proxy-hint"\n' in plain
    assert re.search(r'<select id="proxy"[^>]*disabled', plain)


async def test_a_job_page_shows_its_name_as_text(client_with: Client) -> None:
    async with client_with() as client:
        response = await client.get('/jobs/"><img src=x onerror=alert(1)>')

    assert response.status_code == 200
    assert "<img src=x" not in response.text
    assert 'data-ref="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in response.text


async def test_pages_run_only_their_own_scripts(client_with: Client) -> None:
    async with client_with() as client:
        for path in PAGES:
            response = await client.get(path)
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            for header, value in pages.SECURITY_HEADERS.items():
                assert response.headers[header] == value
            assert "script-src 'self'" in response.headers["content-security-policy"]
            # Nothing fetched from elsewhere, and no inline script or style the policy would block.
            assert not re.search(r'(src|href)="(https?:)?//', response.text)
            assert "<script>" not in response.text
            assert "style=" not in response.text


async def test_the_page_is_not_in_the_api_document(client_with: Client) -> None:
    async with client_with() as client:
        document = (await client.get("/openapi.json")).json()

    assert not {"/", "/jobs", "/jobs/{ref}"} & set(document["paths"])
    assert not [path for path in document["paths"] if path.startswith("/static")]
