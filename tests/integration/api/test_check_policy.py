"""A check request may ask for the `trusted_providers_only` policy (ours), over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.simulator import World
from tests.conftest import world_settings
from tests.fixtures.api import in_process_api
from tests.fixtures.schema import assert_reacher_output


@pytest.fixture
async def client(world: World, shared_database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = world_settings(world, database_url=shared_database_url, result_cache_ttl=0)
    async with in_process_api(settings) as http:
        yield http


async def test_the_policy_is_asked_per_request(client: httpx.AsyncClient) -> None:
    plain = await client.post("/v0/check_email", json={"to_email": "alice@normal.test"})
    strict = await client.post(
        "/v1/check_email",
        json={"to_email": "alice@normal.test", "policy": "trusted_providers_only"},
    )

    assert plain.status_code == strict.status_code == 200
    for body in (plain.json(), strict.json()):
        assert_reacher_output(body)
        assert body["misc"]["provider"] == "other"  # mx.normal.test: nobody we know
        assert body["misc"]["provider_trusted"] is False
    assert plain.json()["is_reachable"] == "safe"
    assert strict.json()["is_reachable"] == "risky"
    assert strict.json()["debug"]["policy"]["changed_verdict"] is True


async def test_an_unknown_policy_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v0/check_email", json={"to_email": "alice@normal.test", "policy": "strict"}
    )

    assert response.status_code == 400
    assert "policy" in response.json()["error"]
