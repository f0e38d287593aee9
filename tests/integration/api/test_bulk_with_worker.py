"""The bulk API with a real procrastinate worker (in-process, its own connections) against the
simulated world: every behaviour of the standard world through POST, status, JSON and CSV;
greylisting retried by the queue; cancelling a running job. A database per test."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from app import queue
from app.api.v0 import csv_export
from app.settings import Settings
from app.simulator import World
from tests.conftest import world_settings
from tests.fixtures.api import in_process_api
from tests.fixtures.bulk import EXPECTED, FAST_BULK, check_counts, summary_of
from tests.fixtures.database import query
from tests.fixtures.waiting import eventually
from worker.main import run_async


def bulk_settings(world: World, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"database_url": database_url, **FAST_BULK}
    values.update(overrides)
    return world_settings(world, **values)


@pytest.fixture
def settings(world: World, fresh_database_url: str) -> Settings:
    return bulk_settings(world, fresh_database_url)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_api(settings) as http:
        yield http


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, *, concurrency: int | None = None
) -> AsyncIterator[None]:
    task = asyncio.create_task(
        run_async(settings, concurrency=concurrency, install_signal_handlers=False, name="test")
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def submit(client: httpx.AsyncClient, emails: list[str]) -> int:
    response = await client.post("/v0/bulk", json={"input_type": "array", "input": emails})
    assert response.status_code == 200, response.text
    return int(response.json()["job_id"])


async def wait_until(
    client: httpx.AsyncClient, job_id: int, *, done: Any, within: float = 30.0
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        response = await client.get(f"/v0/bulk/{job_id}")
        assert response.status_code == 200
        status: dict[str, Any] = response.json()
        check_counts(status)
        if done(status):
            return status
        assert loop.time() < deadline, f"gave up waiting: {status}"
        await asyncio.sleep(0.1)


async def test_a_list_of_every_behaviour_completes_row_by_row(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    emails = [address for address, _ in EXPECTED]

    job_id = await submit(client, emails)
    async with running_worker(settings):
        status = await wait_until(client, job_id, done=lambda s: s["job_status"] == "complete")
    as_json = (await client.get(f"/v0/bulk/{job_id}/download")).json()["results"]
    as_csv = await client.get(f"/v0/bulk/{job_id}/results?format=csv")

    assert status["total_records"] == status["total_processed"] == len(emails)
    assert status["summary"] == summary_of(EXPECTED)
    assert status["finished_at"] >= status["created_at"]
    # JSON: one CheckEmailOutput per input row, in input order
    assert [r["input"] for r in as_json] == emails
    assert [(r["input"], r["is_reachable"]) for r in as_json] == EXPECTED
    assert all(
        list(r)[:7] == ["input", "is_reachable", "misc", "mx", "smtp", "syntax", "debug"]
        for r in as_json
    )
    by_input = {r["input"]: r for r in as_json}
    assert by_input["anyone@catchall.test"]["smtp"]["is_catch_all"] is True
    assert by_input["alice@full.test"]["smtp"]["has_full_inbox"] is True
    assert by_input["alice@disabled.test"]["smtp"]["is_disabled"] is True
    assert by_input["alice@blocked.test"]["smtp"]["description"] == "IpBlacklisted"
    assert by_input["alice@tarpit.test"]["smtp"]["error"]["type"] == "Timeout"
    assert by_input["x@nullmx.test"]["mx"] == {"accepts_mail": False, "records": []}
    assert set(by_input["x@servfail.test"]["mx"]) == {"error"}
    assert by_input["alice@backup.test"]["mx"]["records"] == [
        "mx1.backup.test.",
        "mx2.backup.test.",
    ]
    # CSV: the spec's header, then the same rows
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert 'filename="bulk-' in as_csv.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert tuple(rows[0]) == csv_export.HEADER
    assert len(rows) == len(emails) + 1
    for row, result in zip(rows[1:], as_json, strict=True):
        assert row == csv_export.row(result)
    backup = dict(zip(csv_export.HEADER, rows[emails.index("alice@backup.test") + 1], strict=True))
    assert backup["mx.records"] == "mx1.backup.test.,mx2.backup.test."
    assert backup["mx.accepts_mail"] == "true"
    assert '"mx1.backup.test.,mx2.backup.test."' in as_csv.text
    # greylisted: refused at first, safe on a later attempt scheduled by the queue
    greylist_rcpts = [
        line
        for _, line in world.recorder("mx.greylist.test").commands
        if line.lower().startswith("rcpt") and "alice@greylist.test" in line
    ]
    assert len(greylist_rcpts) >= 2
    # exactly one stored row per input row, and no finished task left in procrastinate
    url = settings.database_url
    assert url is not None
    assert query(url, "SELECT count(*) FROM bulk_results WHERE job_id = %s", job_id) == len(emails)
    assert (
        query(
            url, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s", queue.VERIFY_TASK
        )
        == 0
    )


async def test_greylisting_ends_unknown_after_the_last_attempt(
    world: World, fresh_database_url: str
) -> None:
    # the server lets a retry through only after 1 s; the queue retries after 0.2 s, twice
    settings = bulk_settings(
        world, fresh_database_url, greylist_retry_delay=0.2, greylist_max_attempts=2
    )
    world.reset_greylists()
    async with in_process_api(settings) as client:
        job_id = await submit(client, ["dave@greylist.test"])
        async with running_worker(settings):
            await wait_until(client, job_id, done=lambda s: s["job_status"] == "complete")
        results = (await client.get(f"/v0/bulk/{job_id}/download")).json()["results"]

    assert [r["is_reachable"] for r in results] == ["unknown"]
    assert results[0]["smtp"]["error"]["message"].startswith("transient:")


async def test_cancelling_a_running_job_keeps_what_was_verified(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    emails = [f"u{i}@slow.test" for i in range(80)]
    job_id = await submit(client, emails)

    async with running_worker(settings, concurrency=2):
        await wait_until(client, job_id, done=lambda s: s["total_processed"] >= 2)
        cancelled = await client.delete(f"/v0/bulk/{job_id}")
        await asyncio.sleep(1.5)  # what was in flight finishes
        settled = (await client.get(f"/v0/bulk/{job_id}")).json()
        await asyncio.sleep(0.5)
        later = (await client.get(f"/v0/bulk/{job_id}")).json()
    results = (await client.get(f"/v0/bulk/{job_id}/download")).json()["results"]
    as_csv = (await client.get(f"/v0/bulk/{job_id}/download?format=csv")).text

    assert cancelled.status_code == 200
    assert cancelled.json()["job_status"] == "cancelled"
    check_counts(settled)
    assert settled["job_status"] == "cancelled"
    assert settled == later  # nothing more is verified
    assert 2 <= settled["total_processed"] < len(emails)
    assert len(results) == settled["total_processed"]
    positions = [emails.index(r["input"]) for r in results]
    assert positions == sorted(positions)
    assert as_csv.count("\n") == len(results) + 1
    url = settings.database_url
    assert url is not None
    assert (
        query(
            url, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s", queue.VERIFY_TASK
        )
        == 0
    )


async def test_a_small_job_does_not_wait_behind_a_big_one(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Rows go by their position's priority (`queue.verify_priority`), not first come first
    served: a job submitted while a long one runs is verified next, in its own order."""
    big = await submit(client, [f"u{i}@slow.test" for i in range(80)])

    async with running_worker(settings, concurrency=2):
        await wait_until(client, big, done=lambda s: s["total_processed"] >= 4)
        small = await submit(client, ["alice@normal.test", "nobody@normal.test", "x@nomail.test"])
        done = await wait_until(client, small, done=lambda s: s["job_status"] == "complete")
        big_then = (await client.get(f"/v0/bulk/{big}")).json()
        await client.delete(f"/v0/bulk/{big}")
    results = (await client.get(f"/v0/bulk/{small}/download")).json()["results"]

    assert big_then["job_status"] == "running"
    assert big_then["total_processed"] < 20, big_then  # of 80: the small job went first
    assert done["total_processed"] == 3
    assert [r["input"] for r in results] == [
        "alice@normal.test",
        "nobody@normal.test",
        "x@nomail.test",
    ]


async def test_a_worker_pruned_as_stalled_registers_again_and_goes_on(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # After a database outage another worker may prune this one's registration (its
    # heartbeat stopped meanwhile); a fetch under the old id then breaks a foreign key.
    url = settings.database_url
    assert url is not None
    emails = [f"alice{i}@valid.test" for i in range(6)]
    registered = "SELECT count(*) FROM procrastinate_workers"
    worker = asyncio.create_task(run_async(settings, install_signal_handlers=False, name="pruned"))
    try:
        await eventually(lambda: query(url, registered), within=10, what="registration")
        with psycopg.connect(url, autocommit=True) as conn:
            first = conn.execute("DELETE FROM procrastinate_workers RETURNING id").fetchall()

        job_id = await submit(client, emails)
        status = await wait_until(client, job_id, done=lambda s: s["job_status"] == "complete")

        assert not worker.done()
        with psycopg.connect(url) as conn:
            now = conn.execute("SELECT id FROM procrastinate_workers").fetchall()
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert status["total_processed"] == len(emails)
    assert len(now) == 1
    assert now != first  # registered again, under a new id
