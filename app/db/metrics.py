"""What the metrics and the job log read from the database: the queue's tasks by state, the
running jobs' progress, and which jobs a batch of stored rows finished.

Each is one statement, cheap enough for every scrape (the API caches them briefly anyway):
tasks are counted by (queue, status) over procrastinate's table, which holds pending and
failed tasks only (successful ones are deleted); running jobs are looked for among the newest
`RUNNING_AMONG` jobs only, read backwards on the primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import VERDICTS, BulkJob, BulkJobCounter

RUNNING_AMONG = 1000
"""Running jobs are those, among this many newest jobs, not cancelled and not complete."""

_TASKS_BY_STATE = text(
    "SELECT queue_name, status::text, count(*) FROM procrastinate_jobs GROUP BY 1, 2"
)


@dataclass(frozen=True, slots=True)
class JobCount:
    job_id: int
    total_records: int
    processed: int
    created_at: datetime
    finished_at: datetime | None  # the last row's count, once every row is counted


async def tasks_by_state(session: AsyncSession) -> dict[tuple[str, str], int]:
    """(queue, status) → tasks in procrastinate's table."""
    rows = (await session.execute(_TASKS_BY_STATE)).all()
    return {(str(queue), str(status)): int(count) for queue, status, count in rows}


def _processed() -> ColumnElement[int]:
    """A job's rows counted so far, over its counter shards."""
    columns: list[ColumnElement[int]] = [getattr(BulkJobCounter, f"total_{v}") for v in VERDICTS]
    rows = columns[0]
    for column in columns[1:]:
        rows = rows + column
    return func.coalesce(func.sum(rows), 0)


async def running(session: AsyncSession) -> list[JobCount]:
    """The jobs still running (not cancelled, rows left or still importing), among the
    `RUNNING_AMONG` newest, with the rows counted so far."""
    newest = (
        select(BulkJob.id, BulkJob.total_records, BulkJob.importing, BulkJob.created_at)
        .where(BulkJob.cancelled_at.is_(None))
        .order_by(BulkJob.id.desc())
        .limit(RUNNING_AMONG)
        .subquery()
    )
    processed = _processed()
    statement = (
        select(newest.c.id, newest.c.total_records, newest.c.created_at, processed)
        .outerjoin(BulkJobCounter, BulkJobCounter.job_id == newest.c.id)
        .group_by(newest.c.id, newest.c.total_records, newest.c.importing, newest.c.created_at)
        .having(newest.c.importing | (processed < newest.c.total_records))
    )
    return [
        JobCount(int(job_id), int(total), int(done), created_at, None)
        for job_id, total, created_at, done in (await session.execute(statement)).all()
    ]


async def finished(session: AsyncSession, job_ids: Sequence[int]) -> list[JobCount]:
    """Of these jobs, those complete: every row counted, none still importing."""
    if not job_ids:
        return []
    processed = _processed()
    statement = (
        select(
            BulkJob.id,
            BulkJob.total_records,
            BulkJob.created_at,
            processed,
            func.max(BulkJobCounter.last_counted_at),
        )
        .join(BulkJobCounter, BulkJobCounter.job_id == BulkJob.id)
        .where(BulkJob.id.in_(sorted(set(job_ids))), BulkJob.importing.is_(False))
        .group_by(BulkJob.id)
        .having(processed >= BulkJob.total_records)
    )
    return [
        JobCount(int(job_id), int(total), int(done), created_at, last)
        for job_id, total, created_at, done, last in (await session.execute(statement)).all()
    ]
