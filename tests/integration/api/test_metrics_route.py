"""The API's `/metrics`: behind the header secret like every route, and its database figures
(tasks by queue state, running jobs, rows per second) read from a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import bulk, queue
from app.api.metrics import DatabaseFigures
from app.api.secret import HEADER
from app.db import metrics as figures
from app.db import results
from app.db.jobs import JobOptions
from app.simulator import World
from tests.conftest import world_settings
from tests.fixtures.api import in_process_api

SECRET = "metrics-secret"
EMAILS = ["a@normal.test", "b@normal.test", "c@normal.test"]


def samples(families: Iterable[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


@pytest.fixture
async def client(
    world: World, shared_database_url: str, api_sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = world_settings(world, database_url=shared_database_url, header_secret=SECRET)
    async with in_process_api(settings, sessions=api_sessions) as http:
        yield http


async def test_metrics_need_the_header_secret_like_every_route(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/metrics")).status_code == 401

    response = await client.get("/metrics", headers={HEADER: SECRET})

    assert response.status_code == 200
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"mxprobe_checks", "mxprobe_queue_tasks", "mxprobe_database_up"} <= names


async def store(session: AsyncSession, job_id: int, positions: range) -> None:
    await results.store_many(
        session,
        [
            results.NewResult(
                job_id=job_id,
                position=p,
                email=EMAILS[p],
                verdict="safe",
                output={"input": EMAILS[p]},
            )
            for p in positions
        ],
    )
    await session.commit()


async def test_a_running_jobs_rows_and_rate_then_none_once_it_is_complete(
    api_sessions: async_sessionmaker[AsyncSession], db_session: AsyncSession
) -> None:
    job = await bulk.submit(db_session, emails=EMAILS, options=JobOptions(), max_emails=10)
    await db_session.commit()
    database = DatabaseFigures(read_every=0)
    label = (("job_id", str(job.job_id)),)

    await database.refresh(api_sessions)
    first = samples(database.collect())
    assert first[("mxprobe_job_rows", label)] == 3
    assert first[("mxprobe_job_rows_processed_total", label)] == 0
    assert ("mxprobe_job_rows_per_second", label) not in first  # one read: no rate yet
    tasks = (("queue", queue.VERIFY_QUEUE), ("status", "todo"))
    assert first[("mxprobe_queue_tasks", tasks)] >= 3
    assert first[("mxprobe_database_up", ())] == 1
    assert await figures.finished(db_session, [job.job_id]) == []

    await store(db_session, job.job_id, range(2))
    await asyncio.sleep(0.05)
    await database.refresh(api_sessions)
    second = samples(database.collect())
    assert second[("mxprobe_job_rows_processed_total", label)] == 2
    assert second[("mxprobe_job_rows_per_second", label)] > 0

    await store(db_session, job.job_id, range(2, 3))
    await database.refresh(api_sessions)
    third = samples(database.collect())
    assert not [key for key in third if key[1] == label]  # complete: its series are gone
    (done,) = await figures.finished(db_session, [job.job_id])
    assert (done.job_id, done.total_records, done.processed) == (job.job_id, 3, 3)
    assert done.finished_at is not None
