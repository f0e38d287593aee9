"""`POST /v0/check_email` over HTTP: Reacher's body in, Reacher's output or `{"error"}` out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.simulator import World
from tests.conftest import world_settings
from tests.fixtures.api import in_process_api


@pytest.fixture
async def client(world: World, shared_database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_api(world_settings(world, database_url=shared_database_url)) as http:
        yield http


@pytest.mark.parametrize(
    ("address", "verdict"),
    [
        ("alice@normal.test", "safe"),
        ("nobody@normal.test", "invalid"),
        ("x@catchall.test", "risky"),
        ("alice@full.test", "risky"),
        ("alice@disabled.test", "invalid"),
        ("alice@blocked.test", "unknown"),
        ("alice@refused.test", "unknown"),
        ("x@nullmx.test", "invalid"),
        ("x@servfail.test", "unknown"),
        ("foo@bar", "invalid"),
    ],
)
async def test_check_email_gives_the_verdict(
    client: httpx.AsyncClient, address: str, verdict: str
) -> None:
    response = await client.post("/v0/check_email", json={"to_email": address})

    assert response.status_code == 200
    body = response.json()
    assert body["input"] == address
    assert body["is_reachable"] == verdict


async def test_invalid_syntax_has_reachers_exact_prefix(client: httpx.AsyncClient) -> None:
    response = await client.post("/v0/check_email", json={"to_email": "foo@bar"})

    assert response.text.startswith(
        '{"input":"foo@bar","is_reachable":"invalid","misc":{"is_disposable":false,'
        '"is_role_account":false,"is_b2c":false,"gravatar_url":null,"haveibeenpwned":null},'
        '"mx":{"accepts_mail":false,"records":[]},"smtp":{"can_connect_smtp":false,'
        '"has_full_inbox":false,"is_catch_all":false,"is_deliverable":false,"is_disabled":false},'
        '"syntax":{"address":null,"domain":"","is_valid_syntax":false,"username":"",'
        '"normalized_email":null,"suggestion":null}'
    )


async def test_request_options_are_honoured(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post(
        "/v0/check_email",
        json={
            "to_email": "alice@normal.test",
            "from_email": "me@sender.test",
            "hello_name": "mta.sender.test",
            "smtp_port": world.smtp_port,
        },
    )

    params = response.json()["debug"]["smtp"]["verif_method"]["verif_method"]
    assert params["from_email"] == "me@sender.test"
    assert params["hello_name"] == "mta.sender.test"
    lines = [line for _, line in world.recorder("mx.normal.test").commands]
    assert any(line.upper().startswith("EHLO MTA.SENDER.TEST") for line in lines)
    assert any("<me@sender.test>" in line for line in lines)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"to_email": ""}, 400, "to_email field is required."),
        ({}, 400, "to_email field is required."),
        ({"to_email": 42}, 400, "to_email"),
        ({"to_email": "a@normal.test", "hello_name": "x\r\nDATA"}, 400, "hello_name"),
        ({"to_email": "a@normal.test", "from_email": "a@b.test\nRCPT"}, 400, "from_email"),
        ({"to_email": "a@normal.test", "smtp_port": 70000}, 400, "smtp_port"),
        ({"to_email": "a@normal.test", "proxy": {"host": "p.test"}}, 400, "proxy.port"),
        ({"to_email": "a@normal.test", "proxy": {"host": "p.test", "port": "x"}}, 400, "proxy"),
    ],
)
async def test_bad_requests_get_an_error_object(
    client: httpx.AsyncClient, world: World, body: object, status: int, error: str
) -> None:
    response = await client.post("/v0/check_email", json=body)

    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert error in response.json()["error"]
    assert sum(r.connections for r in world.recorders.values()) == 0


async def test_malformed_json_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v0/check_email", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "request body is not valid JSON"}


async def test_unknown_route_is_a_404_error_object(client: httpx.AsyncClient) -> None:
    response = await client.get("/v0/nothing")

    assert response.status_code == 404
    assert set(response.json()) == {"error"}


async def test_healthz_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_header_secret_guards_every_route_but_health(
    world: World, shared_database_url: str
) -> None:
    settings = world_settings(world, database_url=shared_database_url, header_secret="s3cret")
    async with in_process_api(settings) as http:
        missing = await http.post("/v0/check_email", json={"to_email": "foo@bar"})
        wrong = await http.post(
            "/v0/check_email", json={"to_email": "foo@bar"}, headers={"x-reacher-secret": "no"}
        )
        right = await http.post(
            "/v0/check_email",
            json={"to_email": "foo@bar"},
            headers={"x-reacher-secret": "s3cret"},
        )
        health = await http.get("/healthz")

    assert missing.status_code == 401
    assert set(missing.json()) == {"error"}
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert health.status_code == 200
