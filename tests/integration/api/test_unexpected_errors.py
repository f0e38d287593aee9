"""A request that fails in a way no handler foresaw (here: the API started on a database nobody
migrated) is still `{"error"}` JSON, a 500 with its traceback in the log, and a page on an
allowed origin can read it: the CORS headers are on it, as on every other answer."""

from __future__ import annotations

import logging
import uuid

import pytest

from app.settings import Settings
from tests.fixtures.api import in_process_api
from tests.fixtures.database import create_database, drop_database

PAGE = "https://app.front.test"


async def test_an_unexpected_failure_is_a_json_500_a_cross_origin_page_can_read(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"mxprobe_unmigrated_{uuid.uuid4().hex[:12]}"
    unmigrated = create_database(database_url, name)
    try:
        settings = Settings(database_url=unmigrated, cors_origins=(PAGE,))
        async with in_process_api(settings) as client:
            with caplog.at_level(logging.ERROR, logger="app.api.errors"):
                response = await client.get("/v0/bulk/1", headers={"Origin": PAGE})
            health = await client.get("/healthz")
    finally:
        drop_database(database_url, name)

    assert response.status_code == 500, response.text
    assert response.json() == {"error": "internal server error"}
    assert response.headers["access-control-allow-origin"] == PAGE
    assert "GET /v0/bulk/1 failed" in caplog.text
    assert "bulk_jobs" in caplog.text  # the traceback: the table that is not there
    assert health.status_code == 200  # the API itself goes on
