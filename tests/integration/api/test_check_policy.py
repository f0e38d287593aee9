"""A check request may ask for the `trusted_providers_only` policy (ours), over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.simulator import World
from tests.conftest import world_settings
from tests.fixtures.api import in_process_api
from tests.fixtures.schema import assert_reacher_output
from tests.integration.api.test_bulk_with_worker import bulk_settings, running_worker, wait_until


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


async def test_a_bulk_job_asks_for_the_policy_for_all_its_rows(
    world: World, fresh_database_url: str
) -> None:
    settings = bulk_settings(world, fresh_database_url, result_cache_ttl=0)
    emails = ["alice@normal.test", "nobody@normal.test"]
    async with in_process_api(settings) as client:
        strict = await submit_with(client, emails, policy="trusted_providers_only")
        plain = await submit_with(client, emails)
        async with running_worker(settings):
            for job_id in (strict, plain):
                await wait_until(client, job_id, done=lambda s: s["job_status"] == "complete")
        results = {
            job_id: (await client.get(f"/v0/bulk/{job_id}/download")).json()["results"]
            for job_id in (strict, plain)
        }

    assert [r["is_reachable"] for r in results[plain]] == ["safe", "invalid"]
    assert [r["is_reachable"] for r in results[strict]] == ["risky", "invalid"]  # invalid stays
    assert results[strict][0]["debug"]["policy"]["changed_verdict"] is True
    assert "policy" not in results[plain][0]["debug"]


async def submit_with(client: httpx.AsyncClient, emails: list[str], **options: str) -> int:
    body = {"input_type": "array", "input": emails, **options}
    response = await client.post("/v0/bulk", json=body)
    assert response.status_code == 200, response.text
    return int(response.json()["job_id"])
