"""The bulk use cases: submit a list, read its status, cancel it, export its results.

Shared by the HTTP API and the CLI; no FastAPI here. Functions taking a session do not commit:
the caller's unit of work does. Exports open their own session, because they outlive the
request handler that starts them (the response is streamed after the handler returns).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeAlias

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import queue, webhooks
from app.db import jobs, proxy_credentials, results
from app.db.jobs import JobOptions, JobProgress, JobRef, NewJob

SessionFactory: TypeAlias = async_sessionmaker[AsyncSession]

__all__ = [
    "JOB_REF_PATTERN",
    "MAX_JOB_ID",
    "BadJobRef",
    "BadWebhook",
    "BulkError",
    "BulkStatus",
    "EmptyInput",
    "JobNotFinished",
    "JobNotFound",
    "JobOptions",
    "JobProgress",
    "JobRef",
    "JobStatus",
    "NewJob",
    "SessionFactory",
    "Summary",
    "TooManyEmails",
    "WebhookState",
    "cancel",
    "downloadable",
    "iso8601",
    "job_ref",
    "job_status",
    "recent",
    "status",
    "status_body",
    "stream_json",
    "stream_outputs",
    "stream_with_cells",
    "submit",
]


class BulkError(Exception):
    """Something the client asked for cannot be done."""


class JobNotFound(BulkError):
    def __init__(self, job: JobRef) -> None:
        super().__init__(f"job {job} not found")


class BadJobRef(BulkError):
    def __init__(self) -> None:
        super().__init__(
            f"a job is named by its job_id, digits 1 to {MAX_JOB_ID} without sign or leading "
            f"zero, or by its job_token, the {jobs.TOKEN_LENGTH} characters of A-Z, a-z, 0-9, "
            '"-" and "_" that POST /v0/bulk returned'
        )


class JobNotFinished(BulkError):
    def __init__(self, progress: JobProgress) -> None:
        super().__init__(
            f"job {progress.job_id} is still running ({progress.total_processed} of "
            f"{progress.total_records} processed): download it once job_status is complete"
        )


class BadWebhook(BulkError):
    """A webhook URL that is refused (400)."""


class EmptyInput(BulkError):
    def __init__(self) -> None:
        super().__init__("input must contain at least one email address")


class TooManyEmails(BulkError):
    def __init__(self, *, given: int, limit: int) -> None:
        super().__init__(f"input has {given} emails; the maximum is {limit} per job")
        self.limit = limit


MAX_JOB_ID = 2**63 - 1
"""The largest PostgreSQL bigint."""


def _numbers_up_to(limit: int) -> str:
    """A regular expression for the decimal numbers 1 to `limit`: no sign, no leading zero.

    Shorter numbers are all below `limit`; one as long is below it when it matches its first
    digits and then has a smaller digit (one alternative per place), or is `limit` itself.
    """
    digits = str(limit)
    alternatives = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    for place, digit in enumerate(digits):
        lowest = 1 if place == 0 else 0
        if int(digit) > lowest:
            rest = len(digits) - place - 1
            tail = f"[0-9]{{{rest}}}" if rest else ""
            alternatives.append(f"{digits[:place]}[{lowest}-{int(digit) - 1}]{tail}")
    alternatives.append(digits)
    return "|".join(alternatives)


JOB_REF_PATTERN = f"^(?:{_numbers_up_to(MAX_JOB_ID)}|[A-Za-z0-9_-]{{{jobs.TOKEN_LENGTH}}})$"
"""What may name a job in a path: its id (1 to 2**63-1) or its token. JSON Schema (ECMA) and
Python read it alike; it is published in the OpenAPI document as the parameter's pattern."""

_JOB_REF = re.compile(JOB_REF_PATTERN)


def job_ref(text: str, *, require_token: bool) -> JobRef:
    """The job a path segment names: its id (int) or its token (str).

    Anything else is `BadJobRef` (400), whatever the settings. With `require_token`, an id is
    answered exactly as an unknown job is (404, same message), so it tells nothing.
    """
    # fullmatch: `$` alone would let a trailing newline through.
    if _JOB_REF.fullmatch(text) is None:
        raise BadJobRef
    if len(text) == jobs.TOKEN_LENGTH:
        return text
    if require_token:
        raise JobNotFound(text)
    return int(text)


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


class Summary(BaseModel):
    total_safe: int
    total_invalid: int
    total_risky: int
    total_unknown: int


class WebhookState(BaseModel):
    delivered: int
    failing: int
    given_up: int
    last_status: int | None
    last_error: str | None


class BulkStatus(BaseModel):
    """The spec's fields, in its order; `finished_at` only once the job is complete."""

    job_id: int
    created_at: str
    finished_at: str | None = Field(default=None, exclude_if=lambda v: v is None)
    total_records: int
    total_processed: int
    summary: Summary
    job_status: JobStatus
    error: str | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="Ours: why reading the job's list (remote_url) stopped before its end; "
        "the rows read until then are verified",
    )
    webhook: dict[str, WebhookState] | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="Ours, for a job with a webhook: per kind (on_each_email, on_complete), "
        "its messages delivered, failing (being retried) and given up, and the last try's "
        "HTTP status or error",
    )


def iso8601(moment: datetime) -> str:
    """`2017-04-15T20:00:06.000Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_body(progress: JobProgress) -> dict[str, Any]:
    status = job_status(progress)
    finished_at = progress.finished_at if status is JobStatus.COMPLETE else None
    return BulkStatus(
        job_id=progress.job_id,
        created_at=iso8601(progress.created_at),
        finished_at=iso8601(finished_at) if finished_at else None,
        total_records=progress.total_records,
        total_processed=progress.total_processed,
        summary=Summary(
            total_safe=progress.total_safe,
            total_invalid=progress.total_invalid,
            total_risky=progress.total_risky,
            total_unknown=progress.total_unknown,
        ),
        job_status=status,
        error=progress.import_error,
        webhook=None
        if progress.webhook is None
        else {
            kind: WebhookState.model_validate(state.to_json())
            for kind, state in progress.webhook.items()
        },
    ).model_dump(mode="json")


async def submit(
    session: AsyncSession,
    *,
    emails: Sequence[str],
    options: JobOptions,
    max_emails: int,
    webhook: Mapping[str, Any] | None = None,
    allow_private_urls: bool = False,
) -> NewJob:
    """Create the job and one verification task per address, in the session's transaction.
    `webhook`: the request's webhooks (`POST /v1/bulk`), stored on the job; a URL that is
    known to be refused now (not http(s), a literal private address unless
    `allow_private_urls`: MXPROBE_ALLOW_PRIVATE_URLS) is `BadWebhook`."""
    if not emails:
        raise EmptyInput
    if len(emails) > max_emails:
        raise TooManyEmails(given=len(emails), limit=max_emails)
    job = await jobs.create(
        session,
        total_records=len(emails),
        options=options,
        webhook=checked_webhook(webhook, allow_private_urls=allow_private_urls),
    )
    await queue.defer_verifications(session, job_id=job.job_id, emails=emails)
    return job


def checked_webhook(
    webhook: Mapping[str, Any] | None, *, allow_private_urls: bool
) -> dict[str, Any] | None:
    """A request's webhooks as a job stores them; `BadWebhook` for a URL known to be refused
    now (not http(s), a literal private address unless `allow_private_urls`)."""
    try:
        config = webhooks.checked(webhook, allow_private=allow_private_urls)
    except webhooks.BadWebhook as exc:
        raise BadWebhook(str(exc)) from None
    return config.to_json() if config else None


async def status(session: AsyncSession, job: JobRef) -> JobProgress:
    progress = await jobs.progress(session, job)
    if progress is None:
        raise JobNotFound(job)
    return progress


async def recent(session: AsyncSession, *, limit: int, offset: int = 0) -> list[JobProgress]:
    """A page of jobs, newest first, each with its progress (the front ends' job list)."""
    found = []
    for job_id in await jobs.newest_ids(session, limit=limit, offset=offset):
        progress = await jobs.progress(session, job_id)
        if progress is not None:  # pruned meanwhile
            found.append(progress)
    return found


async def cancel(session: AsyncSession, job: JobRef) -> JobProgress:
    """Cancel the tasks no worker has started and mark the job cancelled; rows already
    verified (and those finishing right now) are kept. A complete job stays complete."""
    progress = await status(session, job)
    if job_status(progress) is JobStatus.COMPLETE:
        return progress
    await jobs.mark_cancelled(session, progress.job_id)
    await queue.cancel_pending(session, job_id=progress.job_id)
    await proxy_credentials.erase_ended(session)  # no worker needs them any more
    return await status(session, progress.job_id)


async def downloadable(session: AsyncSession, job: JobRef) -> JobProgress:
    """The job, if its results may be downloaded: complete, or cancelled (what exists)."""
    progress = await status(session, job)
    if job_status(progress) is JobStatus.RUNNING:
        raise JobNotFinished(progress)
    return progress


async def stream_json(
    factory: SessionFactory,
    job_id: int,
    *,
    batch_size: int = 1000,
    start: int = 0,
    limit: int | None = None,
) -> AsyncIterator[Sequence[str]]:
    """Batches of stored results as JSON text, in input order; `start`, `limit`: one page,
    addressed by input row (`results.stream_json`)."""
    async with factory() as session:
        async for batch in results.stream_json(
            session, job_id, batch_size=batch_size, start=start, limit=limit
        ):
            yield batch


async def stream_with_cells(
    factory: SessionFactory,
    job_id: int,
    *,
    batch_size: int = 1000,
    start: int = 0,
    limit: int | None = None,
) -> AsyncIterator[Sequence[tuple[list[str] | None, str]]]:
    """Batches of (the row's other cells, its stored result as JSON text), in input order."""
    async with factory() as session:
        async for batch in results.stream_with_cells(
            session, job_id, batch_size=batch_size, start=start, limit=limit
        ):
            yield batch


async def stream_outputs(
    factory: SessionFactory,
    job_id: int,
    *,
    batch_size: int = 1000,
    start: int = 0,
    limit: int | None = None,
) -> AsyncIterator[Iterator[dict[str, Any]]]:
    """Batches of stored results, decoded (lazily, row by row), in input order."""
    async with factory() as session:
        async for batch in results.stream_outputs(
            session, job_id, batch_size=batch_size, start=start, limit=limit
        ):
            yield batch
