"""A worker killed with -9 in the middle of a job loses nothing: once its heartbeat is stale,
another worker's periodic check puts its jobs back in the queue, and the job completes with
exactly one result per row."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.queue import VERIFY_TASK
from app.simulator import World
from tests.conftest import world_env
from tests.fixtures.bulk import check_counts, fast_bulk_env
from tests.fixtures.database import query
from tests.fixtures.services import service_env, start_api, start_worker
from tests.fixtures.waiting import wait_for


@pytest.fixture
def env(world: World, fresh_database_url: str) -> dict[str, str]:
    # tarpit.test holds each probe for smtp_timeout: the first worker is surely mid-task
    return service_env(
        fresh_database_url, {**world_env(world), **fast_bulk_env(), "MXPROBE_SMTP_TIMEOUT": "1.5"}
    )


@pytest.fixture
def api(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    service, url = start_api(env=env, logs=tmp_path)
    yield url
    service.stop()


def test_a_killed_workers_rows_are_finished_by_another(
    api: str, env: dict[str, str], tmp_path: Path, fresh_database_url: str
) -> None:
    emails = [f"u{i}@tarpit.test" for i in range(8)] + [f"u{i}@normal.test" for i in range(24)]
    job_id = httpx.post(
        f"{api}/v0/bulk", json={"input_type": "array", "input": emails}, timeout=10
    ).json()["job_id"]

    first = start_worker("first", env=env, logs=tmp_path, concurrency=4)
    doing = f"FROM procrastinate_jobs WHERE status = 'doing' AND task_name = '{VERIFY_TASK}'"
    wait_for(  # (the periodic tasks it runs too come and go)
        lambda: query(fresh_database_url, f"SELECT count(*) {doing}") >= 4,
        within=30,
        what=f"the first worker to hold rows:\n{first.output()}",
    )
    held = query(fresh_database_url, f"SELECT array_agg((args->>'position')::int) {doing}")
    first.kill()
    second = start_worker("second", env=env, logs=tmp_path, concurrency=8)
    try:
        deadline = time.monotonic() + 60
        while True:
            status = httpx.get(f"{api}/v0/bulk/{job_id}", timeout=5).json()
            check_counts(status)
            if status["job_status"] == "complete":
                break
            assert time.monotonic() < deadline, f"{status}\n{second.output()}"
            time.sleep(0.2)
    finally:
        second_exit = second.stop()

    assert second_exit == 0, second.output()
    assert "jobs of stalled workers" in second.output()
    assert held, "the first worker held no job when killed"
    assert status["total_processed"] == len(emails)
    stored, distinct = query(
        fresh_database_url,
        "SELECT count(*), count(DISTINCT position) FROM bulk_results WHERE job_id = %s",
        job_id,
    )
    assert (stored, distinct) == (len(emails), len(emails))
    assert query(
        fresh_database_url,
        "SELECT count(*) FROM bulk_results WHERE job_id = %s AND position = ANY(%s)",
        job_id,
        held,
    ) == len(held)
    results = httpx.get(f"{api}/v0/bulk/{job_id}/download", timeout=10).json()["results"]
    assert [r["input"] for r in results] == emails
    assert (
        query(
            fresh_database_url,
            f"SELECT count(*) FROM procrastinate_jobs WHERE task_name = '{VERIFY_TASK}'",
        )
        == 0
    )
