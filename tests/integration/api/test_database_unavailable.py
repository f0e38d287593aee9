"""While PostgreSQL is unreachable the API says so, as 503 `{"error": "database unavailable"}`
with `Retry-After` (not 500, and not the driver's words), and it recovers by itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.api.main import create_app
from app.settings import Settings
from tests.fixtures.restartable_postgres import RestartablePostgres, restartable_postgres

__all__ = ["restartable_postgres"]  # the fixture, for this module's tests


@pytest.fixture
async def client(restartable_postgres: RestartablePostgres) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=restartable_postgres.url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"error": "database unavailable"}
    assert response.headers["retry-after"] == "5"


async def test_the_api_answers_503_while_the_database_is_down_then_recovers(
    client: httpx.AsyncClient, restartable_postgres: RestartablePostgres
) -> None:
    created = await client.post("/v0/bulk", json={"input_type": "array", "input": ["a@b.test"]})
    assert created.status_code == 200, created.text
    job_id = created.json()["job_id"]

    restartable_postgres.stop()
    assert_unavailable(await client.get(f"/v0/bulk/{job_id}"))
    assert_unavailable(
        await client.post("/v0/bulk", json={"input_type": "array", "input": ["c@d.test"]})
    )
    health = await client.get("/healthz")
    assert health.status_code == 503
    assert health.json() == {"status": "unhealthy", "error": "database unavailable"}
    assert health.headers["retry-after"] == "5"

    restartable_postgres.start()
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    status = await client.get(f"/v0/bulk/{job_id}")
    assert status.status_code == 200, status.text
    assert status.json()["total_records"] == 1


async def test_a_restart_costs_at_most_one_503_per_pooled_connection(
    client: httpx.AsyncClient, restartable_postgres: RestartablePostgres
) -> None:
    """Connections of the pool that died with the server are dropped, none reaches a 500."""
    created = await client.post("/v0/bulk", json={"input_type": "array", "input": ["a@b.test"]})
    job_id = created.json()["job_id"]

    restartable_postgres.restart()
    statuses = [(await client.get(f"/v0/bulk/{job_id}")).status_code for _ in range(10)]

    assert set(statuses) <= {200, 503}
    assert statuses[-1] == 200
