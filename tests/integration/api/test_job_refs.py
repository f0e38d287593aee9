"""How a path names a bulk job: its numeric id or its unguessable token, parsed strictly, on every
route that takes one; `MXPROBE_REQUIRE_JOB_TOKEN` leaves only the token. In-process, one
rolled-back transaction per test."""

from __future__ import annotations

import re
import string
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import bulk
from app.settings import Settings
from tests.fixtures.api import in_process_api

VALID = {"input_type": "array", "input": ["alice@normal.test", "bob@normal.test"]}
TOKEN_ALPHABET = set(string.ascii_letters + string.digits + "-_")
MAX_ID = 2**63 - 1

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def clients(
    shared_database_url: str, api_sessions: async_sessionmaker[AsyncSession]
) -> ClientFactory:
    @asynccontextmanager
    async def open_client(**settings: Any) -> AsyncIterator[httpx.AsyncClient]:
        async with in_process_api(
            Settings(database_url=shared_database_url, **settings), sessions=api_sessions
        ) as http:
            yield http

    return open_client


@pytest.fixture
async def client(clients: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with clients() as http:
        yield http


@pytest.fixture
async def strict_client(clients: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with clients(require_job_token=True) as http:
        yield http


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    return str(body["error"])


async def created(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/v0/bulk", json=VALID)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def one_off(token: str) -> str:
    """The token with its last character changed to another of the alphabet."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


ROUTES = [
    ("GET", ""),
    ("DELETE", ""),
    ("GET", "/download"),
    ("GET", "/download?format=csv"),
    ("GET", "/result"),
    ("GET", "/results"),
]

# What the path carries (URL-encoded where needed) → what the server sees.
MALFORMED = {
    "plus sign": "+1",
    "leading zero": "01",
    "two leading zeros": "001",
    "leading space": "%201",
    "trailing space": "1%20",
    "trailing newline": "1%0A",
    "NUL": "1%00",
    "zero": "0",
    "negative": "-1",
    "negative zero": "-0",
    "decimal": "1.0",
    "exponent": "1e3",
    "hex": "0x1",
    "underscore": "1_000",
    "letters": "abc",
    "2^63": str(MAX_ID + 1),
    "19 nines": "9" * 19,
    "20 digits": "1" + "0" * 19,
    "300 digits": "7" * 300,
    "arabic-indic one": "%D9%A1",
    "fullwidth one": "%EF%BC%91",
    "devanagari 42": "%E0%A5%AA%E0%A5%A8",
    "superscript one": "%C2%B9",
    "token 31 chars": "A" * 31,
    "token 33 chars": "A" * 33,
    "token with +": "A" * 31 + "+",
    "token with =": "A" * 31 + "=",
    "token with .": "A" * 31 + ".",
    "token with space": "A" * 31 + "%20",
    "token with é": "A" * 31 + "%C3%A9",
}


@pytest.mark.parametrize("name", MALFORMED)
@pytest.mark.parametrize(("method", "suffix"), ROUTES)
async def test_malformed_job_names_are_400_on_every_route(
    client: httpx.AsyncClient, method: str, suffix: str, name: str
) -> None:
    response = await client.request(method, f"/v0/bulk/{MALFORMED[name]}{suffix}")

    says = error_of(response, 400)
    assert says == str(bulk.BadJobRef())
    assert "job_id" in says
    assert "job_token" in says
    assert "9223372036854775807" in says


@pytest.mark.parametrize("name", ["zero", "leading zero", "token 33 chars", "arabic-indic one"])
async def test_malformed_is_400_with_tokens_required_too(
    strict_client: httpx.AsyncClient, name: str
) -> None:
    response = await strict_client.get(f"/v0/bulk/{MALFORMED[name]}")

    assert error_of(response, 400) == str(bulk.BadJobRef())


@pytest.mark.parametrize(("method", "suffix"), ROUTES)
@pytest.mark.parametrize("unknown", [str(MAX_ID), "987654321", "A" * 32, "-_" * 16])
async def test_well_formed_unknown_jobs_are_404(
    client: httpx.AsyncClient, method: str, suffix: str, unknown: str
) -> None:
    response = await client.request(method, f"/v0/bulk/{unknown}{suffix}")

    assert error_of(response, 404) == f"job {unknown} not found"


async def test_post_returns_the_id_and_a_fresh_unguessable_token(
    client: httpx.AsyncClient,
) -> None:
    bodies = [await created(client) for _ in range(5)]

    for body in bodies:
        assert list(body) == ["job_id", "job_token"]
        assert isinstance(body["job_id"], int)
        assert len(body["job_token"]) == 32
        assert set(body["job_token"]) <= TOKEN_ALPHABET
    assert len({body["job_token"] for body in bodies}) == 5
    assert len({body["job_id"] for body in bodies}) == 5


async def test_status_by_id_and_by_token_is_the_same_body_with_the_specs_fields(
    client: httpx.AsyncClient,
) -> None:
    job = await created(client)

    by_id = await client.get(f"/v0/bulk/{job['job_id']}")
    by_token = await client.get(f"/v0/bulk/{job['job_token']}")

    assert by_id.status_code == by_token.status_code == 200
    assert by_token.json() == by_id.json()
    assert list(by_token.json()) == [
        "job_id",
        "created_at",
        "total_records",
        "total_processed",
        "summary",
        "job_status",
    ]
    assert by_token.json()["job_id"] == job["job_id"]


async def test_a_token_one_character_off_finds_nothing(client: httpx.AsyncClient) -> None:
    job = await created(client)
    near = one_off(job["job_token"])

    response = await client.get(f"/v0/bulk/{near}")

    assert error_of(response, 404) == f"job {near} not found"


async def test_cancel_and_download_by_token(client: httpx.AsyncClient) -> None:
    job = await created(client)
    token = job["job_token"]

    running = await client.get(f"/v0/bulk/{token}/download")
    cancelled = await client.delete(f"/v0/bulk/{token}")
    by_id = await client.get(f"/v0/bulk/{job['job_id']}")
    downloads = {
        suffix: await client.get(f"/v0/bulk/{token}/{suffix}")
        for suffix in ("download", "result", "results", "download?format=csv")
    }

    assert f"job {job['job_id']} is still running" in error_of(running, 409)
    assert cancelled.status_code == 200
    assert cancelled.json()["job_status"] == "cancelled"
    assert by_id.json()["job_status"] == "cancelled"
    for suffix in ("download", "result", "results"):
        assert downloads[suffix].status_code == 200
        assert downloads[suffix].json() == {"results": []}
    as_csv = downloads["download?format=csv"]
    assert as_csv.status_code == 200
    # The file is named by the id, not the token (which a browser would keep in its history).
    assert as_csv.headers["content-disposition"] == (
        f'attachment; filename="bulk-{job["job_id"]}.csv"'
    )


async def test_with_tokens_required_an_id_is_answered_as_an_unknown_job(
    strict_client: httpx.AsyncClient,
) -> None:
    job = await created(strict_client)
    job_id, token = job["job_id"], job["job_token"]
    unknown_id = MAX_ID

    for method, suffix in ROUTES:
        known = await strict_client.request(method, f"/v0/bulk/{job_id}{suffix}")
        unknown = await strict_client.request(method, f"/v0/bulk/{unknown_id}{suffix}")

        assert known.status_code == unknown.status_code == 404
        assert known.headers["content-type"] == unknown.headers["content-type"]
        assert known.json() == {"error": f"job {job_id} not found"}
        assert unknown.json() == {"error": f"job {unknown_id} not found"}

    status = await strict_client.get(f"/v0/bulk/{token}")
    assert status.status_code == 200
    assert status.json()["job_id"] == job_id
    assert status.json()["job_status"] == "running"
    cancelled = await strict_client.delete(f"/v0/bulk/{token}")
    assert cancelled.json()["job_status"] == "cancelled"
    assert (await strict_client.get(f"/v0/bulk/{token}/download")).json() == {"results": []}


async def test_without_the_setting_ids_work(client: httpx.AsyncClient) -> None:
    job = await created(client)

    assert (await client.get(f"/v0/bulk/{job['job_id']}")).status_code == 200
    assert (await client.delete(f"/v0/bulk/{job['job_id']}")).status_code == 200


async def test_the_openapi_document_describes_both_forms(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]

    templates = [path for path in paths if "{job_id}" in path]
    assert len(templates) == 6  # v0: status, 3 downloads; v1: status, results
    for path in templates:
        for method, operation in paths[path].items():
            (parameter,) = [p for p in operation["parameters"] if p["in"] == "path"]
            assert parameter["name"] == "job_id", (path, method)
            assert parameter["required"] is True
            assert parameter["schema"]["type"] == "string"
            assert parameter["schema"]["pattern"] == bulk.JOB_REF_PATTERN
            assert "job_token" in parameter["description"]
            assert "404" in operation["responses"]
            assert "400" in operation["responses"]
    created_schema = document["components"]["schemas"]["BulkCreated"]
    assert set(created_schema["required"]) == {"job_id", "job_token"}
    assert created_schema["properties"]["job_token"]["type"] == "string"


NUMBERS = sorted(
    {
        1,
        9,
        10,
        10**18 - 1,
        10**18,
        MAX_ID - 1,
        MAX_ID,
        MAX_ID + 1,
        10**19 - 1,
        10**19,
        # At each place of 2**63-1: the same digits up to it, then one more or one less there.
        *(
            int(str(MAX_ID)[:place] + str(digit) + str(MAX_ID)[place + 1 :])
            for place in range(19)
            for digit in range(10)
            if place or digit
        ),
    }
)


@pytest.mark.parametrize("number", NUMBERS)
def test_the_published_pattern_is_exactly_1_to_2_63_minus_1(number: int) -> None:
    text = str(number)
    in_range = 1 <= number <= MAX_ID

    assert (re.fullmatch(bulk.JOB_REF_PATTERN, text) is not None) is in_range
    if in_range:
        assert bulk.job_ref(text, require_token=False) == number
    else:
        with pytest.raises(bulk.BadJobRef):
            bulk.job_ref(text, require_token=False)


@pytest.mark.parametrize("name", MALFORMED)
async def test_the_published_pattern_refuses_what_the_server_refuses(
    client: httpx.AsyncClient, name: str
) -> None:
    seen = unquote(MALFORMED[name])

    response = await client.get(f"/v0/bulk/{MALFORMED[name]}")

    assert response.status_code == 400
    assert re.fullmatch(bulk.JOB_REF_PATTERN, seen) is None


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().require_job_token is False
    monkeypatch.setenv("MXPROBE_REQUIRE_JOB_TOKEN", "true")

    assert Settings().require_job_token is True
