"""Repositories against a real PostgreSQL, one rolled-back transaction per test."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import queue
from app.db import jobs, results
from app.db.jobs import JobOptions, RequestProxy


def fake_output(email: str, verdict: str) -> dict[str, Any]:
    return {"input": email, "is_reachable": verdict, "misc": {}, "mx": {}, "smtp": {}}


async def new_job(session: AsyncSession, total: int, **options: Any) -> int:
    job = await jobs.create(session, total_records=total, options=JobOptions(**options))
    return job.job_id


async def test_recording_a_row_twice_stores_and_counts_it_once(db_session: AsyncSession) -> None:
    job_id = await new_job(db_session, 3)

    first = await results.record(
        db_session,
        job_id=job_id,
        position=1,
        email="a@x.test",
        verdict="safe",
        output=fake_output("a@x.test", "safe"),
    )
    again = await results.record(
        db_session,
        job_id=job_id,
        position=1,
        email="a@x.test",
        verdict="invalid",
        output=fake_output("a@x.test", "invalid"),
    )
    progress = await jobs.progress(db_session, job_id)

    assert (first, again) == (True, False)
    assert await results.count(db_session, job_id) == 1
    assert progress is not None
    assert (progress.total_safe, progress.total_invalid, progress.total_processed) == (1, 0, 1)


async def test_progress_adds_up_and_finishes_when_every_row_is_counted(
    db_session: AsyncSession,
) -> None:
    job_id = await new_job(db_session, 20)
    verdicts = ["safe", "invalid", "risky", "unknown"] * 5

    for position, verdict in enumerate(verdicts):
        before = await jobs.progress(db_session, job_id)
        assert before is not None
        assert before.finished_at is None
        assert not before.is_complete
        await results.record(
            db_session,
            job_id=job_id,
            position=position,
            email=f"{position}@x.test",
            verdict=verdict,
            output=fake_output(f"{position}@x.test", verdict),
        )
    progress = await jobs.progress(db_session, job_id)

    assert progress is not None
    assert progress.is_complete
    assert progress.total_processed == 20
    assert (
        progress.total_safe,
        progress.total_invalid,
        progress.total_risky,
        progress.total_unknown,
    ) == (5, 5, 5, 5)
    assert progress.finished_at is not None


async def test_progress_of_a_job_with_nothing_done(db_session: AsyncSession) -> None:
    job_id = await new_job(db_session, 2)

    progress = await jobs.progress(db_session, job_id)

    assert progress is not None
    assert progress.total_processed == 0
    assert progress.last_counted_at is None
    assert await jobs.progress(db_session, job_id + 1000) is None


async def test_results_stream_in_input_order_whatever_the_completion_order(
    db_session: AsyncSession,
) -> None:
    job_id = await new_job(db_session, 1100)
    order = list(range(1100))
    order.reverse()
    for position in order:
        await results.record(
            db_session,
            job_id=job_id,
            position=position,
            email=f"{position}@x.test",
            verdict="safe",
            output=fake_output(f"{position}@x.test", "safe"),
        )

    texts = [
        t async for batch in results.stream_json(db_session, job_id, batch_size=1000) for t in batch
    ]
    decoded = [
        o
        async for batch in results.stream_outputs(db_session, job_id, batch_size=700)
        for o in batch
    ]

    assert len(texts) == 1100
    assert json.loads(texts[0])["input"] == "0@x.test"
    assert [o["input"] for o in decoded] == [f"{p}@x.test" for p in range(1100)]


async def test_options_round_trip_with_the_sealed_proxy_credentials(
    db_session: AsyncSession,
) -> None:
    options = JobOptions(
        from_email="me@x.test",
        hello_name="x.test",
        proxy=RequestProxy(host="127.0.0.1", port=1080, sealed_credentials="gAAAA-token"),
        smtp_ports=(25, 587),
    )
    job_id = (await jobs.create(db_session, total_records=1, options=options)).job_id

    task_job = await jobs.for_task(db_session, job_id)

    assert task_job is not None
    assert task_job.options == options
    assert not task_job.cancelled
    assert task_job.options.smtp_ports == (25, 587)


async def test_cancelling_keeps_the_first_time(db_session: AsyncSession) -> None:
    job_id = await new_job(db_session, 1)

    assert await jobs.mark_cancelled(db_session, job_id)
    first = await jobs.progress(db_session, job_id)
    assert await jobs.mark_cancelled(db_session, job_id)
    second = await jobs.progress(db_session, job_id)

    assert first is not None
    assert second is not None
    assert first.cancelled_at is not None
    assert first.cancelled_at == second.cancelled_at
    assert not await jobs.mark_cancelled(db_session, job_id + 1000)


async def test_prune_deletes_old_jobs_with_their_results(db_session: AsyncSession) -> None:
    old = await new_job(db_session, 1)
    recent = await new_job(db_session, 1)
    for job_id in (old, recent):
        await results.record(
            db_session,
            job_id=job_id,
            position=0,
            email="a@x.test",
            verdict="safe",
            output=fake_output("a@x.test", "safe"),
        )
    await db_session.execute(
        text("UPDATE bulk_jobs SET created_at = now() - interval '40 days' WHERE id = :id"),
        {"id": old},
    )

    deleted = await jobs.prune(db_session, created_before=datetime.now(UTC) - timedelta(days=30))

    assert deleted == 1
    assert await jobs.progress(db_session, old) is None
    assert await results.count(db_session, old) == 0
    assert await results.count(db_session, recent) == 1


async def pending_tasks(session: AsyncSession, job_id: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT args FROM procrastinate_jobs WHERE task_name = :task "
            "AND (args->>'job_id')::bigint = :job_id AND status = 'todo' ORDER BY id"
        ),
        {"task": queue.VERIFY_TASK, "job_id": job_id},
    )
    return [row[0] for row in rows]


async def test_defer_creates_one_task_per_row_with_its_position(db_session: AsyncSession) -> None:
    emails = ["a@x.test", "b@x.test", "a@x.test"] * 7  # several chunks, duplicates kept
    job_id = await new_job(db_session, len(emails))

    deferred = await queue.defer_verifications(
        db_session, job_id=job_id, emails=emails, chunk_size=5
    )
    tasks = await pending_tasks(db_session, job_id)

    assert deferred == len(emails) == len(tasks)
    assert [t["position"] for t in tasks] == list(range(len(emails)))
    assert [t["email"] for t in tasks] == emails
    assert {t["job_id"] for t in tasks} == {job_id}
    priorities = await db_session.scalars(
        text(
            "SELECT priority FROM procrastinate_jobs WHERE task_name = :task "
            "AND (args->>'job_id')::bigint = :job_id ORDER BY id"
        ),
        {"task": queue.VERIFY_TASK, "job_id": job_id},
    )
    assert list(priorities) == [0, -1, -1, -2, -2, -2, -2, *[-3] * 8, *[-4] * 6]


async def test_a_rows_priority_is_the_same_in_sql_and_in_python(db_session: AsyncSession) -> None:
    """0, then one less each time the row number doubles, up to the largest bigint."""
    positions = [0, 1, 2, 3, 6, 7, 14, 15, 999_999, 2**20 - 2, 2**20 - 1, 2**40, 2**63 - 2]
    in_sql = text(f"SELECT {queue.POSITION_PRIORITY.format('CAST(:p AS bigint)')}")
    for position in positions:
        expected = queue.verify_priority(position)
        assert await db_session.scalar(in_sql, {"p": position}) == expected, position
    assert [queue.verify_priority(p) for p in (0, 1, 2, 3, 7, 2**63 - 2)] == [
        0,
        -1,
        -1,
        -2,
        -3,
        -62,
    ]
    assert queue.LOWEST_PRIORITY < queue.verify_priority(2**63 - 2)


async def test_a_job_that_outgrows_the_queue_statistics_refreshes_them(
    db_session: AsyncSession,
) -> None:
    """So the workers' fetch query keeps its index plan (see queue._keep_fetch_planned)."""
    believed = float(await db_session.scalar(queue.ESTIMATED_ROWS) or 0)
    emails = [f"u{i}@x.test" for i in range(max(500, int(2 * believed) + 1))]
    job_id = await new_job(db_session, len(emails))

    await queue.defer_verifications(db_session, job_id=job_id, emails=emails)

    assert float(await db_session.scalar(queue.ESTIMATED_ROWS) or 0) >= len(emails)


async def test_a_rolled_back_submit_leaves_neither_job_nor_tasks(
    db_session: AsyncSession,
) -> None:
    async with db_session.begin_nested() as savepoint:
        job_id = await new_job(db_session, 2)
        await queue.defer_verifications(db_session, job_id=job_id, emails=["a@x.test", "b"])
        await savepoint.rollback()

    assert await jobs.progress(db_session, job_id) is None
    assert await pending_tasks(db_session, job_id) == []


async def test_cancel_pending_removes_only_that_jobs_waiting_tasks(
    db_session: AsyncSession,
) -> None:
    mine = await new_job(db_session, 3)
    other = await new_job(db_session, 2)
    await queue.defer_verifications(db_session, job_id=mine, emails=["a", "b", "c"])
    await queue.defer_verifications(db_session, job_id=other, emails=["d", "e"])
    # a worker has started row 0 of `mine`
    await db_session.execute(
        text(
            "UPDATE procrastinate_jobs SET status = 'doing' WHERE task_name = :task "
            "AND args @> jsonb_build_object('job_id', CAST(:job_id AS bigint), 'position', 0)"
        ),
        {"task": queue.VERIFY_TASK, "job_id": mine},
    )

    cancelled = await queue.cancel_pending(db_session, job_id=mine)

    assert cancelled == 2
    assert await pending_tasks(db_session, mine) == []
    assert len(await pending_tasks(db_session, other)) == 2
    doing = await db_session.scalar(
        text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'")
    )
    assert doing == 1
