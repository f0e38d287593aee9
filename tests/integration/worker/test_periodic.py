"""The periodic maintenance tasks, run directly against a real database and procrastinate."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from procrastinate import App, JobContext
from pydantic import ValidationError

from app import queue
from app.engine import Resolver, Verifier
from app.settings import Settings
from tests.integration.worker.conftest import job_context
from worker import periodic


@pytest.fixture
async def context(fresh_database_url: str) -> AsyncIterator[JobContext]:
    settings = Settings(
        database_url=fresh_database_url,
        worker_heartbeat_interval=0.5,
        worker_stalled_timeout=2.0,
        result_retention_days=30,
    )
    resolver = Resolver(settings.dns_config())
    verifier = Verifier(settings.probe_config(), resolver=resolver)
    async with job_context(
        settings,
        verifier,
        task_name=periodic.RETRY_STALLED_TASK,
        queue_name=queue.MAINTENANCE_QUEUE,
    ) as context:
        yield context
    await resolver.close()


def sql(url: str, statement: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


async def test_jobs_of_a_dead_worker_go_back_to_the_queue(
    context: JobContext, fresh_database_url: str
) -> None:
    app: App = context.app
    manager = app.job_manager
    dead = await manager.register_worker()
    alive = await manager.register_worker()
    sql(
        fresh_database_url,
        "UPDATE procrastinate_workers SET last_heartbeat = now() - "
        "interval '1 minute' WHERE id = %s",
        dead,
    )
    for worker_id, position in ((dead, 0), (alive, 1)):
        await app.configure_task(queue.VERIFY_TASK, queue=queue.VERIFY_QUEUE).defer_async(
            job_id=1, position=position, email="a@x.test"
        )
        job = await manager.fetch_job(queues=[queue.VERIFY_QUEUE], worker_id=worker_id)
        assert job is not None

    retried = await periodic.retry_stalled_jobs(context, timestamp=0)

    assert retried == 1
    states = sql(
        fresh_database_url,
        "SELECT args->>'position', status FROM procrastinate_jobs ORDER BY id",
    )
    assert states == [("0", "todo"), ("1", "doing")]
    workers = sql(fresh_database_url, "SELECT id FROM procrastinate_workers ORDER BY id")
    assert workers == [(alive,)]


async def test_prune_deletes_jobs_past_retention(
    context: JobContext, fresh_database_url: str
) -> None:
    sql(
        fresh_database_url,
        "INSERT INTO bulk_jobs (token, total_records, created_at) VALUES "
        "('old', 1, now() - interval '31 days'), ('recent', 1, now() - interval '29 days')",
    )

    deleted = await periodic.prune(context, timestamp=0)
    await periodic.prune_queue(context, timestamp=0)

    assert deleted == 1
    assert len(sql(fresh_database_url, "SELECT id FROM bulk_jobs")) == 1


async def test_prune_forgets_past_send_schedules_and_old_mx_behaviour(
    context: JobContext, fresh_database_url: str
) -> None:
    sql(
        fresh_database_url,
        "INSERT INTO mx_rates (key, next_at) VALUES "
        "('old', now() - interval '2 hours'), ('soon', now() + interval '1 minute')",
    )
    sql(
        fresh_database_url,
        "INSERT INTO mx_behaviour (key, replies, timeouts, busy, tarpits, updated_at) VALUES "
        "('old', 1, 0, 0, 0, now() - interval '1 day'), ('recent', 1, 0, 0, 0, now())",
    )

    await periodic.prune(context, timestamp=0)

    assert sql(fresh_database_url, "SELECT key FROM mx_rates") == [("soon",)]
    assert sql(fresh_database_url, "SELECT key FROM mx_behaviour") == [("recent",)]


def test_a_stalled_timeout_shorter_than_two_heartbeats_is_refused() -> None:
    with pytest.raises(ValidationError, match="worker_stalled_timeout"):
        Settings(worker_heartbeat_interval=10, worker_stalled_timeout=15)


def test_the_schedules() -> None:
    assert periodic.every_seconds(10) == "* * * * * */10"
    fast = Settings(worker_heartbeat_interval=0.5, worker_stalled_timeout=2.0)
    assert periodic.stalled_check_every(fast) == 1
    assert periodic.stalled_check_every(Settings()) == 10
