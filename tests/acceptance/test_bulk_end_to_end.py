"""The bulk service as deployed: the API and two workers as subprocesses on one PostgreSQL,
the simulated world in this process. A list of every behaviour goes in over HTTP; status,
JSON and CSV come out, row by row."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from app.api.v0 import csv_export
from app.simulator import World
from tests.conftest import world_env
from tests.fixtures.bulk import EXPECTED, completed, fast_bulk_env, summary_of
from tests.fixtures.services import Service, service_env, start_api, start_worker


@pytest.fixture
def env(world: World, fresh_database_url: str) -> dict[str, str]:
    return service_env(fresh_database_url, {**world_env(world), **fast_bulk_env()})


@pytest.fixture
def api(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    service, url = start_api(env=env, logs=tmp_path)
    yield url
    service.stop()


def test_two_workers_verify_a_list_of_every_behaviour(
    api: str, env: dict[str, str], tmp_path: Path, world: World, fresh_database_url: str
) -> None:
    emails = [address for address, _ in EXPECTED]
    workers: list[Service] = [
        start_worker(f"worker{n}", env=env, logs=tmp_path, concurrency=10) for n in (1, 2)
    ]
    try:
        created = httpx.post(
            f"{api}/v0/bulk", json={"input_type": "array", "input": emails}, timeout=10
        )
        assert created.status_code == 200, created.text
        job_id = created.json()["job_id"]
        status = completed(api, job_id)
        results = httpx.get(f"{api}/v0/bulk/{job_id}/download", timeout=10).json()["results"]
        as_csv = httpx.get(f"{api}/v0/bulk/{job_id}/download?format=csv", timeout=10)
    finally:
        exits = [w.stop() for w in workers]
        logs = "\n".join(w.output() for w in workers)

    assert exits == [0, 0], logs
    assert status["summary"] == summary_of(EXPECTED)
    assert [(r["input"], r["is_reachable"]) for r in results] == EXPECTED
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert tuple(rows[0]) == csv_export.HEADER
    assert [tuple(row[:2]) for row in rows[1:]] == EXPECTED
    assert [row for row in rows[1:]] == [csv_export.row(r) for r in results]
    with psycopg.connect(fresh_database_url) as conn:
        stored = conn.execute(
            "SELECT count(*), count(DISTINCT position) FROM bulk_results WHERE job_id = %s",
            (job_id,),
        ).fetchone()
    assert stored == (len(emails), len(emails))
