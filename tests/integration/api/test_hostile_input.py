"""Input that must get a clear 4xx, in-process (httpx's ASGITransport): unstorable strings, long
addresses, bodies too large or too slow, bodies that are not a JSON object, the header secret,
and an OpenAPI document that says all this. What lives in uvicorn (a `Content-Length` that lies,
chunked bodies on the wire, keep-alive, header deadlines) is tested against the real server in
tests/acceptance/test_slow_clients.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.errors import error_json
from app.api.limits import BULK_BYTES_PER_EMAIL, BULK_SLACK_BYTES, CHECK_EMAIL_MAX_BYTES
from app.settings import Settings
from app.simulator import World
from tests.conftest import world_settings
from tests.fixtures.api import in_process_api

MAX_EMAILS = 5
BULK_LIMIT = MAX_EMAILS * BULK_BYTES_PER_EMAIL + BULK_SLACK_BYTES

Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client_with(
    world: World, shared_database_url: str, api_sessions: async_sessionmaker[AsyncSession]
) -> Client:
    """An in-process API pointed at the world, with these settings on top."""

    @asynccontextmanager
    async def connect(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = world_settings(
            world, database_url=shared_database_url, bulk_max_emails=MAX_EMAILS, **overrides
        )
        async with in_process_api(settings, sessions=api_sessions) as http:
            yield http

    return connect


@pytest.fixture
async def client(client_with: Client) -> AsyncIterator[httpx.AsyncClient]:
    async with client_with() as http:
        yield http


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    return str(body["error"])


def raw_json(text: str) -> bytes:
    """`text` as JSON bytes, written by hand so a `\\ud800` escape stays an escape."""
    return text.encode()


JSON = {"content-type": "application/json"}
CHECK = '{"to_email": "a@normal.test", %s}'
BULK = '{"input_type": "array", "input": ["a@normal.test"], %s}'

# ---- 1. Every string field: a NUL or a lone surrogate is a 400 that names the field ----------

C = "/v0/check_email"
B = "/v0/bulk"

UNSTORABLE = [
    pytest.param(C, '{"to_email": "\\ud800abc@example.com"}', "to_email", id="c"),
    pytest.param(C, '{"to_email": "abc\\udfff@x.test"}', "to_email", id="c-low"),
    pytest.param(C, '{"to_email": "a\\u0000b@x.test"}', "to_email", id="c-nul"),
    pytest.param(C, CHECK % '"from_email": "\\ud800@x.test"', "from_email", id="c-from"),
    pytest.param(C, CHECK % '"hello_name": "\\udbff.test"', "hello_name", id="c-hello"),
    pytest.param(C, CHECK % '"from_email": "a\\u0000@x.test"', "from_email", id="c-from-nul"),
    pytest.param(B, '{"input_type": "\\ud800", "input": ["a@b.test"]}', "input_type", id="b-type"),
    pytest.param(B, '{"input_type": "array", "input": ["a@b", "\\ud800@b"]}', "input[1]", id="b"),
    pytest.param(
        B, '{"input_type": "array", "input": ["a\\u0000@b.test"]}', "input[0]", id="b-nul"
    ),
    pytest.param(B, BULK % '"from_email": "\\ud800@x.test"', "from_email", id="b-from"),
    pytest.param(B, BULK % '"hello_name": "x\\u0000"', "hello_name", id="b-hello"),
    pytest.param(
        B, BULK % '"proxy": {"host": "\\ud800", "port": 1080}', "proxy.host", id="b-proxy"
    ),
]


@pytest.mark.parametrize(("path", "body", "field"), UNSTORABLE)
async def test_a_nul_or_lone_surrogate_is_a_400_naming_the_field(
    client: httpx.AsyncClient, world: World, path: str, body: str, field: str
) -> None:
    response = await client.post(path, content=raw_json(body), headers=JSON)

    message = error_of(response, 400)
    assert message.startswith(field), message
    assert "NUL" in message or "lone surrogate" in message, message
    assert sum(r.connections for r in world.recorders.values()) == 0
    # and the service goes on answering
    assert (await client.get("/version")).status_code == 200


def test_an_error_message_that_quotes_a_surrogate_still_encodes() -> None:
    """Every value a message quotes was checked first; were one not, the answer would still be
    a 400 with the surrogate escaped, not a 500 while encoding it."""
    response = error_json('unknown input_type "x\ud800"', status_code=400)

    assert response.status_code == 400
    assert json.loads(bytes(response.body)) == {"error": 'unknown input_type "x\\ud800"'}


# ---- 1b. CR, LF and other controls in to_email never reach the SMTP wire ----------------------


@pytest.mark.parametrize(
    "address",
    [
        "alice@normal.test\r\nRCPT TO:<bob@normal.test>",
        "alice@normal.test\nQUIT",
        "alice\r@normal.test",
        "alice@normal.test\t",
        "alice@normal.test\x7f",
        "alice@normal.test\x85",
        "alice@normal.test\u2028RSET",
    ],
)
async def test_control_characters_in_to_email_are_an_invalid_verdict_without_smtp(
    client: httpx.AsyncClient, world: World, address: str
) -> None:
    """Decided: a verdict (200, `invalid`, `is_valid_syntax: false`), as for any malformed
    address, not a 400: a bulk list keeps one result per row, and both routes agree."""
    response = await client.post("/v0/check_email", json={"to_email": address})

    assert response.status_code == 200, response.text
    output = response.json()
    assert output["input"] == address
    assert output["is_reachable"] == "invalid"
    assert output["syntax"]["is_valid_syntax"] is False
    assert output["mx"]["records"] == []
    assert sum(r.connections for r in world.recorders.values()) == 0


async def test_control_characters_are_accepted_in_a_bulk_list(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v0/bulk", json={"input_type": "array", "input": ["a@normal.test\r\nQUIT", "b\t@x.test"]}
    )

    assert response.status_code == 200, response.text


# ---- 2. Addresses over 320 characters ----------------------------------------------------------


def address_of(length: int) -> str:
    domain = "@normal.test"
    return "a" * (length - len(domain)) + domain


async def test_a_to_email_of_320_characters_is_checked_and_321_is_a_400(
    client: httpx.AsyncClient, world: World
) -> None:
    longest = await client.post("/v0/check_email", json={"to_email": address_of(320)})
    too_long = await client.post("/v0/check_email", json={"to_email": address_of(321)})

    assert longest.status_code == 200
    assert longest.json()["is_reachable"] == "invalid"  # its local part is over 64 octets
    message = error_of(too_long, 400)
    assert message == "to_email: String should have at most 320 characters"


async def test_a_bulk_address_over_320_characters_is_a_400_naming_its_index(
    client: httpx.AsyncClient,
) -> None:
    ok = await client.post("/v0/bulk", json={"input_type": "array", "input": [address_of(320)]})
    too_long = await client.post(
        "/v0/bulk",
        json={"input_type": "array", "input": ["a@b.test", "c@d.test", address_of(321)]},
    )

    assert ok.status_code == 200, ok.text
    assert error_of(too_long, 400) == "input[2] is longer than 320 characters"


# ---- 2b. Body size, before parsing --------------------------------------------------------------


def check_body_of(size: int) -> bytes:
    """A valid check request of exactly `size` bytes (white space pads it)."""
    body = b'{"to_email": "foo@bar"}'
    return body[:-1] + b" " * (size - len(body)) + b"}"


async def test_a_check_body_at_the_limit_is_read_and_one_byte_more_is_a_413(
    client: httpx.AsyncClient,
) -> None:
    at_limit = await client.post(
        "/v0/check_email", content=check_body_of(CHECK_EMAIL_MAX_BYTES), headers=JSON
    )
    over = await client.post(
        "/v0/check_email", content=check_body_of(CHECK_EMAIL_MAX_BYTES + 1), headers=JSON
    )

    assert at_limit.status_code == 200, at_limit.text
    assert error_of(over, 413) == (
        f"request body is larger than {CHECK_EMAIL_MAX_BYTES} bytes, "
        "the limit of POST /v0/check_email"
    )
    assert over.headers["connection"] == "close"


async def test_a_200_mb_body_is_refused_by_its_content_length_without_being_read(
    client: httpx.AsyncClient,
) -> None:
    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(200):
            read += 1
            yield b" " * 1024 * 1024

    response = await client.post(
        "/v0/check_email",
        content=body(),
        headers={**JSON, "content-length": str(200 * 1024 * 1024)},
    )

    assert "16384 bytes" in error_of(response, 413)
    assert read <= 1  # httpx may have started its stream; the app asked for nothing


async def test_a_content_length_that_lies_low_does_not_lift_the_limit(
    client: httpx.AsyncClient,
) -> None:
    """Whatever the header says, the bytes are counted (uvicorn itself stops at the declared
    length; another server, or an ASGI test client, may not)."""
    response = await client.post(
        "/v0/check_email",
        content=check_body_of(1024 * 1024),
        headers={**JSON, "content-length": "100"},
    )

    assert "16384 bytes" in error_of(response, 413)


async def test_a_chunked_body_is_counted_as_it_arrives(client: httpx.AsyncClient) -> None:
    sent = 0

    async def chunks(total: int) -> AsyncIterator[bytes]:
        nonlocal sent
        body = check_body_of(total)
        for start in range(0, len(body), 1000):
            sent += 1
            yield body[start : start + 1000]

    small = await client.post("/v0/check_email", content=chunks(5000), headers=JSON)
    sent = 0
    large = await client.post("/v0/check_email", content=chunks(10 * 1024 * 1024), headers=JSON)

    assert small.status_code == 200, small.text
    assert "16384 bytes" in error_of(large, 413)
    assert sent <= 18  # stopped at the first chunk past the limit


async def test_the_bulk_limit_follows_bulk_max_emails(client: httpx.AsyncClient) -> None:
    padding = b" " * (BULK_LIMIT - 100)
    within = b'{"input_type": "array", "input": ["a@b.test"]' + padding + b"}"
    over = within[:-1] + b" " * (BULK_LIMIT - len(within) + 1) + b"}"

    accepted = await client.post("/v0/bulk", content=within, headers=JSON)
    refused = await client.post("/v0/bulk", content=over, headers=JSON)

    assert accepted.status_code == 200, accepted.text
    assert error_of(refused, 413) == (
        f"request body is larger than {BULK_LIMIT} bytes, the limit of POST /v0/bulk "
        "(MXPROBE_BULK_MAX_BYTES)"
    )


async def test_bulk_max_bytes_sets_the_bulk_limit(client_with: Client) -> None:
    async with client_with(bulk_max_bytes=2048) as client:
        body = json.dumps({"input_type": "array", "input": ["a@b.test"] * 5}).encode()
        padded = body[:-1] + b" " * (2049 - len(body)) + b"}"
        refused = await client.post("/v0/bulk", content=padded, headers=JSON)

    assert "larger than 2048 bytes" in error_of(refused, 413)


async def test_too_many_emails_is_still_a_413_of_its_own(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v0/bulk", json={"input_type": "array", "input": ["a@b.test"] * (MAX_EMAILS + 1)}
    )

    assert "bytes" not in error_of(response, 413)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v0/bulk/1"), ("DELETE", "/v0/bulk/1"), ("GET", "/healthz"), ("POST", "/nowhere")],
)
async def test_other_routes_take_only_a_small_body(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, content=b"x" * 5000)

    assert error_of(response, 413) == (
        f"request body is larger than 4096 bytes, the limit of {method} {path}"
    )


async def test_a_content_length_that_is_not_a_number_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v0/check_email", content=b"{}", headers={**JSON, "content-length": "1e3"}
    )

    assert error_of(response, 400) == "invalid Content-Length header"


# ---- 2c. Bodies that are not a JSON object -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        (B, b"[" * 100_000, "request body is not valid JSON: nested too deeply"),
        (B, b'{"input": ' + b"[" * 5000, "request body is not valid JSON: nested too deeply"),
        (C, b'{"to_email": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
        (C, b"[" * 100_000, "larger than 16384 bytes"),
        (C, b'{"to_email": "\xff\xfe@x.test"}', "request body is not valid JSON: not UTF-8 text"),
        (C, b'{"to_email": "a@b", "smtp_port": 1' + b"0" * 5000 + b"}", "could not be read"),
        (C, b"", "request body is required: a JSON object"),
        (C, b"[]", "request body must be a JSON object"),
        (C, b'"a@b.test"', "request body must be a JSON object"),
        (C, b"null", "request body must be a JSON object"),
        (C, b"{", "request body is not valid JSON"),
        (B, b"[]", "request body must be a JSON object"),
        (B, b"", "request body is required: a JSON object"),
    ],
)
async def test_bodies_that_are_not_a_json_object_are_a_400(
    client_with: Client, path: str, body: bytes, error: str
) -> None:
    status = 413 if "larger" in error else 400
    async with client_with(bulk_max_bytes=1024 * 1024) as client:
        response = await client.post(path, content=body, headers=JSON)
        assert error in error_of(response, status)
        assert (await client.get("/version")).status_code == 200


async def test_unknown_fields_are_ignored_as_reacher_clients_send_some(
    client: httpx.AsyncClient,
) -> None:
    reacher = {
        "gmail_verif_method": "api",
        "hotmail_verif_method": "headless",
        "yahoo_verif_method": "api",
        "check_gravatar": True,
        "haveibeenpwned_api_key": None,
        "smtp_timeout": {"secs": 10, "nanos": 0},
        "retries": 2,
    }
    check = await client.post("/v0/check_email", json={"to_email": "foo@bar", **reacher})
    bulk = await client.post(
        "/v0/bulk", json={"input_type": "array", "input": ["a@b.test"], **reacher}
    )

    assert check.status_code == 200, check.text
    assert bulk.status_code == 200, bulk.text


# ---- 3. The body must arrive in time ------------------------------------------------------------


async def test_a_body_that_stops_arriving_is_a_408(client_with: Client) -> None:
    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"to_email": '
        await asyncio.sleep(30)
        yield b'"foo@bar"}'

    async with client_with(http_body_timeout=0.3) as client:
        response = await asyncio.wait_for(
            client.post("/v0/check_email", content=stalls(), headers=JSON), timeout=10
        )
        after = await client.post("/v0/check_email", json={"to_email": "foo@bar"})

    assert error_of(response, 408) == "request body not received within 0.3 s"
    assert response.headers["connection"] == "close"
    assert after.status_code == 200


async def test_a_slow_but_timely_body_is_read(client_with: Client) -> None:
    async def trickles() -> AsyncIterator[bytes]:
        for part in (b'{"to_email"', b': "foo@bar"', b"}"):
            await asyncio.sleep(0.05)
            yield part

    async with client_with(http_body_timeout=2) as client:
        response = await client.post("/v0/check_email", content=trickles(), headers=JSON)

    assert response.status_code == 200, response.text


# ---- 4. The header secret ----------------------------------------------------------------------

OPEN = ["/healthz", "/version", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"]


async def test_with_a_secret_only_health_version_and_the_docs_are_open(
    client_with: Client,
) -> None:
    async with client_with(header_secret="s3cret") as client:
        opened = {path: (await client.get(path)).status_code for path in OPEN}
        guarded = [
            await client.post("/v0/check_email", json={"to_email": "foo@bar"}),
            await client.post("/v0/bulk", json={"input_type": "array", "input": ["a@b.test"]}),
            await client.get("/v0/bulk/1"),
            await client.delete("/v0/bulk/1"),
            await client.get("/v0/bulk/1/download"),
            await client.get("/nowhere"),
            await client.get("/docs/"),
        ]
        wrong = await client.get("/v0/bulk/1", headers={"x-reacher-secret": "s3cre"})
        right = await client.post(
            "/v0/check_email", json={"to_email": "foo@bar"}, headers={"x-reacher-secret": "s3cret"}
        )

    assert opened == dict.fromkeys(OPEN, 200)
    for response in guarded:
        assert error_of(response, 401) == "missing x-reacher-secret header"
    assert error_of(wrong, 401) == "invalid x-reacher-secret header"
    assert right.status_code == 200


@pytest.mark.parametrize(
    "secret", ["sécret", "s3cret\n", "s3\x00cret", " s3cret", "s3cret ", "s3\u2028cret", "\t"]
)
def test_a_secret_no_client_could_send_is_refused_at_start_up(secret: str) -> None:
    with pytest.raises(ValidationError, match="header_secret"):
        Settings(header_secret=secret)


def test_a_blank_secret_is_no_secret() -> None:
    assert Settings(header_secret="").header_secret is None


# ---- 5. The OpenAPI document says what the API does ----------------------------------------------


async def test_the_openapi_document_has_no_422_and_every_error_is_an_error_object(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()

    text = json.dumps(document)
    assert '"422"' not in text
    assert "HTTPValidationError" not in text
    assert "ValidationError" not in text
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, method)
    assert document["components"]["schemas"]["ErrorBody"]["required"] == ["error"]


async def test_the_openapi_document_describes_the_bodies_and_their_limits(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    check = document["paths"]["/v0/check_email"]["post"]["responses"]
    bulk = document["paths"]["/v0/bulk"]["post"]["responses"]

    assert "to_email" in schemas["CheckEmailIn"]["required"]
    to_email = schemas["CheckEmailIn"]["properties"]["to_email"]
    assert "default" not in to_email
    assert (to_email["type"], to_email["minLength"], to_email["maxLength"]) == ("string", 1, 320)
    by_type = {
        variant["properties"]["input_type"]["const"]: variant["properties"]["input"]
        for variant in schemas["BulkIn"]["oneOf"]
    }
    assert set(by_type) == {"array", "csv", "remote_url"}
    assert by_type["array"]["type"] == "array"
    assert by_type["array"]["items"]["type"] == "string"
    assert by_type["array"]["items"]["maxLength"] == 320
    assert by_type["csv"]["type"] == by_type["remote_url"]["type"] == "string"
    assert by_type["array"] in schemas["BulkIn"]["properties"]["input"]["anyOf"]
    assert set(schemas["BulkIn"]["required"]) == {"input_type", "input"}
    assert {"400", "408", "413"} <= set(check) & set(bulk)
    assert "16384 bytes" in check["413"]["description"]
    assert f"{BULK_LIMIT} bytes" in bulk["413"]["description"]
    for item in document["paths"].values():
        for operation in item.values():
            assert "security" not in operation


async def test_with_a_secret_the_openapi_document_says_which_routes_need_it(
    client_with: Client,
) -> None:
    async with client_with(header_secret="s3cret") as client:
        document = (await client.get("/openapi.json")).json()

    assert document["components"]["securitySchemes"] == {
        "HeaderSecret": {"type": "apiKey", "in": "header", "name": "x-reacher-secret"}
    }
    for path, item in document["paths"].items():
        for operation in item.values():
            guarded = path not in ("/healthz", "/version")
            assert ("security" in operation) is guarded, path
            assert ("401" in operation["responses"]) is guarded, path
