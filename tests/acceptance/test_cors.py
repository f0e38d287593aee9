"""A web page on another origin, against `mxprobe serve` as shipped with MXPROBE_CORS_ORIGINS and
MXPROBE_HEADER_SECRET: the browser's preflight passes (it carries no secret and no body), and
the real cross-origin requests that follow get the CORS headers, errors included. The requests
are the ones a browser sends (its `Origin`, its preflight headers)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.simulator import World
from tests.conftest import world_env
from tests.fixtures.services import serving

PAGE = "https://app.front.test"
OTHER = "https://evil.test"
SECRET = "s3cret-for-cors"


@pytest.fixture(scope="module")
def served(
    database_url: str,
    template_database: str,
    session_world: World,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    env = {
        **world_env(session_world),
        "MXPROBE_CORS_ORIGINS": f"{PAGE},http://localhost:5173",
        "MXPROBE_HEADER_SECRET": SECRET,
    }
    with serving(
        database_url, template_database, env=env, logs=tmp_path_factory.mktemp("cors")
    ) as (
        service,
        base,
    ):
        yield base
        assert "Traceback" not in service.output(), service.output()


def preflight(base: str, path: str, *, origin: str, method: str) -> httpx.Response:
    return httpx.options(
        f"{base}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "x-reacher-secret, content-type",
        },
        timeout=10,
    )


def test_a_preflight_passes_without_the_secret(served: str) -> None:
    response = preflight(served, "/v1/bulk", origin=PAGE, method="POST")

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == PAGE
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "x-reacher-secret" in allowed
    assert "content-type" in allowed
    assert "authorization" in allowed


def test_a_page_submits_and_polls_across_origins(served: str) -> None:
    headers = {"Origin": PAGE, "x-reacher-secret": SECRET}
    with httpx.Client(base_url=served, timeout=30, headers=headers) as page:
        created = page.post("/v1/bulk", json={"input": ["alice@normal.test"]})
        assert created.status_code == 200, created.text
        assert created.headers["access-control-allow-origin"] == PAGE
        job_id = created.json()["job_id"]

        assert preflight(served, f"/v1/bulk/{job_id}", origin=PAGE, method="GET").is_success
        polled = page.get(f"/v1/bulk/{job_id}")
        assert polled.status_code == 200, polled.text
        assert polled.headers["access-control-allow-origin"] == PAGE
        assert polled.json()["job_id"] == job_id

        listed = page.get("/v0/bulk")
        assert listed.status_code == 200, listed.text
        assert listed.headers["access-control-allow-origin"] == PAGE


def test_a_download_exposes_its_file_name(served: str) -> None:
    headers = {"Origin": PAGE, "x-reacher-secret": SECRET}
    with httpx.Client(base_url=served, timeout=30, headers=headers) as page:
        job_id = page.post("/v1/bulk", json={"input": ["bob@normal.test"]}).json()["job_id"]
        page.delete(f"/v0/bulk/{job_id}")  # downloadable at once, whatever the workers did
        download = page.get(f"/v0/bulk/{job_id}/download?format=csv")
        assert download.status_code == 200, download.text
        assert "Content-Disposition" in download.headers["access-control-expose-headers"]
        assert download.headers["content-disposition"].startswith("attachment")


def test_without_the_secret_the_page_reads_the_401(served: str) -> None:
    response = httpx.get(f"{served}/v0/bulk/1", headers={"Origin": PAGE}, timeout=10)
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == PAGE
    assert "x-reacher-secret" in response.json()["error"]


def test_another_origin_gets_no_cors_headers(served: str) -> None:
    refused = preflight(served, "/v1/bulk", origin=OTHER, method="POST")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    response = httpx.get(
        f"{served}/v0/bulk", headers={"Origin": OTHER, "x-reacher-secret": SECRET}, timeout=10
    )
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
