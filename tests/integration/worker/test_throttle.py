"""A task whose MX group has no free slot comes back later as a new task, and later still for a
group that has been turning sessions away."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from procrastinate import JobContext

from app import queue
from app.db import jobs
from app.db.jobs import JobOptions
from app.db.session import session_scope
from app.engine import (
    LocalMxLimiter,
    MxBehaviour,
    ProbeOpener,
    Resolver,
    SessionPool,
    Verifier,
)
from app.simulator import World
from tests.conftest import world_settings
from tests.integration.worker.conftest import job_context
from worker import tasks


@pytest.fixture
async def context(world: World, fresh_database_url: str) -> AsyncIterator[JobContext]:
    settings = world_settings(world, database_url=fresh_database_url)
    resolver = Resolver(settings.dns_config())
    # Every slot of every MX group is taken (by "another process").
    config = settings.probe_config()
    behaviour = MxBehaviour()
    pool = SessionPool(
        opener=ProbeOpener(config, behaviour),
        limiter=LocalMxLimiter(per_mx=0, total=10),
        slot_wait=0.1,
        behaviour=behaviour,
    )
    verifier = Verifier(config, resolver=resolver, pool=pool, raise_no_slot=True)
    async with job_context(
        settings, verifier, task_name=queue.VERIFY_TASK, queue_name=queue.VERIFY_QUEUE
    ) as context:
        yield context
    await verifier.close()
    await resolver.close()


async def a_job(context: JobContext) -> int:
    async with session_scope(tasks.deps_of(context).sessions) as session:
        return (await jobs.create(session, total_records=1, options=JobOptions())).job_id


def deferred_in(url: str) -> list[float]:
    """Seconds from now to each waiting verification task's scheduled start."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM scheduled_at - now())::float8 FROM procrastinate_jobs "
            "WHERE task_name = %s AND status = 'todo'",
            (queue.VERIFY_TASK,),
        ).fetchall()
    return [row[0] for row in rows]


async def test_a_full_mx_group_sends_the_task_back_to_the_queue(
    context: JobContext, fresh_database_url: str
) -> None:
    job_id = await a_job(context)

    outcome = await tasks.verify_address(
        context, job_id=job_id, position=0, email="alice@normal.test"
    )

    assert outcome == "throttled: re-deferred"
    [delay] = deferred_in(fresh_database_url)
    assert 0.0 < delay <= 1.0


async def test_a_group_that_said_421_is_knocked_on_less_often(
    context: JobContext, fresh_database_url: str
) -> None:
    job_id = await a_job(context)
    behaviour = tasks.deps_of(context).verifier.pool.behaviour
    for _ in range(3):
        behaviour.observe_busy("mx.normal.test")

    await tasks.verify_address(context, job_id=job_id, position=0, email="alice@normal.test")

    [delay] = deferred_in(fresh_database_url)
    assert 3.0 < delay <= 8.0  # 0.5 s doubled three times, jittered up to twice that
