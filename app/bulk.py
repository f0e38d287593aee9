"""The bulk use cases: submit a list, read its status, cancel it, export its results.

Shared by the HTTP API and the CLI; no FastAPI here. Functions taking a session do not commit:
the caller's unit of work does. Exports open their own session, because they outlive the
request handler that starts them (the response is streamed after the handler returns).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from enum import StrEnum
from typing import Any, TypeAlias

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import queue
from app.db import jobs, results
from app.db.jobs import JobOptions, JobProgress

SessionFactory: TypeAlias = async_sessionmaker[AsyncSession]

__all__ = [
    "BulkError",
    "EmptyInput",
    "JobNotFinished",
    "JobNotFound",
    "JobOptions",
    "JobProgress",
    "JobStatus",
    "SessionFactory",
    "TooManyEmails",
    "cancel",
    "downloadable",
    "job_status",
    "status",
    "stream_json",
    "stream_outputs",
    "submit",
]


class BulkError(Exception):
    """Something the client asked for cannot be done."""


class JobNotFound(BulkError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} not found")


class JobNotFinished(BulkError):
    def __init__(self, progress: JobProgress) -> None:
        super().__init__(
            f"job {progress.job_id} is still running ({progress.total_processed} of "
            f"{progress.total_records} processed): download it once job_status is complete"
        )


class EmptyInput(BulkError):
    def __init__(self) -> None:
        super().__init__("input must contain at least one email address")


class TooManyEmails(BulkError):
    def __init__(self, *, given: int, limit: int) -> None:
        super().__init__(f"input has {given} emails; the maximum is {limit} per job")
        self.limit = limit


class JobStatus(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    CANCELLED = "cancelled"


def job_status(progress: JobProgress) -> JobStatus:
    if progress.cancelled_at is not None:
        return JobStatus.CANCELLED
    if progress.is_complete:
        return JobStatus.COMPLETE
    return JobStatus.RUNNING


async def submit(
    session: AsyncSession, *, emails: Sequence[str], options: JobOptions, max_emails: int
) -> int:
    """Create the job and one verification task per address, in the session's transaction."""
    if not emails:
        raise EmptyInput
    if len(emails) > max_emails:
        raise TooManyEmails(given=len(emails), limit=max_emails)
    job_id = await jobs.create(session, total_records=len(emails), options=options)
    await queue.defer_verifications(session, job_id=job_id, emails=emails)
    return job_id


async def status(session: AsyncSession, job_id: int) -> JobProgress:
    progress = await jobs.progress(session, job_id)
    if progress is None:
        raise JobNotFound(job_id)
    return progress


async def cancel(session: AsyncSession, job_id: int) -> JobProgress:
    """Cancel the tasks no worker has started and mark the job cancelled; rows already
    verified (and those finishing right now) are kept. A complete job stays complete."""
    progress = await status(session, job_id)
    if job_status(progress) is JobStatus.COMPLETE:
        return progress
    await jobs.mark_cancelled(session, job_id)
    await queue.cancel_pending(session, job_id=job_id)
    return await status(session, job_id)


async def downloadable(session: AsyncSession, job_id: int) -> JobProgress:
    """The job, if its results may be downloaded: complete, or cancelled (what exists)."""
    progress = await status(session, job_id)
    if job_status(progress) is JobStatus.RUNNING:
        raise JobNotFinished(progress)
    return progress


async def stream_json(
    factory: SessionFactory, job_id: int, *, batch_size: int = 1000
) -> AsyncIterator[Sequence[str]]:
    """Batches of stored results as JSON text, in input order."""
    async with factory() as session:
        async for batch in results.stream_json(session, job_id, batch_size=batch_size):
            yield batch


async def stream_outputs(
    factory: SessionFactory, job_id: int, *, batch_size: int = 1000
) -> AsyncIterator[Iterator[dict[str, Any]]]:
    """Batches of stored results, decoded (lazily, row by row), in input order."""
    async with factory() as session:
        async for batch in results.stream_outputs(session, job_id, batch_size=batch_size):
            yield batch
