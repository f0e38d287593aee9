"""Bulk jobs: create, read progress, cancel, prune. Repositories flush; callers commit.

A job is found by its numeric id or by its token (`JobRef`): ids count up and can be guessed,
tokens cannot (`new_token`: 192 random bits).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import webhooks
from app.db.models import BulkJob, BulkJobCounter


@dataclass(frozen=True, slots=True)
class NamedProxy:
    """One of the workers' MXPROBE_PROXIES, stored by its name only."""

    name: str


@dataclass(frozen=True, slots=True)
class RequestProxy:
    """A request's free-form proxy. Its credentials are never stored in plain text: only
    sealed (`app.sealing`, under MXPROBE_SECRET_KEY), and erased once the job has ended
    (`app.db.proxy_credentials`), after which `erased` says they were there."""

    host: str
    port: int
    sealed_credentials: str | None = field(default=None, repr=False)
    erased: bool = False


StoredProxy: TypeAlias = NamedProxy | RequestProxy

CREDENTIALS_KEY = "credentials"
"""The key of `RequestProxy.sealed_credentials` in a job's stored `proxy`: a token, or null
once erased."""


@dataclass(frozen=True, slots=True)
class JobOptions:
    """The probe options of a bulk request, as stored on the job for its workers. Unset
    options fall back to the worker's settings; the worker turns the stored proxy into one
    it can use (`worker.options`)."""

    from_email: str | None = None
    hello_name: str | None = None
    proxy: StoredProxy | None = None
    smtp_ports: tuple[int, ...] | None = None
    # Probe every row, whatever the result cache holds from before the job (`app.cache`).
    fresh: bool = False
    # The verdict policy ("none" | "trusted_providers_only"); None: the worker's MXPROBE_POLICY.
    policy: str | None = None

    def to_json(self) -> dict[str, Any]:
        stored: dict[str, Any] = {}
        if self.from_email is not None:
            stored["from_email"] = self.from_email
        if self.hello_name is not None:
            stored["hello_name"] = self.hello_name
        match self.proxy:
            case NamedProxy(name=name):
                stored["proxy"] = {"name": name}
            case RequestProxy() as proxy:
                stored["proxy"] = {"host": proxy.host, "port": proxy.port}
                if proxy.sealed_credentials is not None or proxy.erased:
                    stored["proxy"][CREDENTIALS_KEY] = proxy.sealed_credentials
        if self.smtp_ports:
            stored["smtp_ports"] = list(self.smtp_ports)
        if self.fresh:
            stored["fresh"] = True
        if self.policy is not None:
            stored["policy"] = self.policy
        return stored

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> JobOptions:
        ports = stored.get("smtp_ports")
        return cls(
            from_email=stored.get("from_email"),
            hello_name=stored.get("hello_name"),
            proxy=_proxy_from_json(stored.get("proxy")),
            smtp_ports=tuple(int(p) for p in ports) if ports else None,
            fresh=stored.get("fresh") is True,
            policy=stored.get("policy"),
        )


def _proxy_from_json(stored: dict[str, Any] | None) -> StoredProxy | None:
    if not stored:
        return None
    if "name" in stored:
        return NamedProxy(name=str(stored["name"]))
    sealed = stored.get(CREDENTIALS_KEY)
    return RequestProxy(
        host=str(stored["host"]),
        port=int(stored["port"]),
        sealed_credentials=sealed,
        # null once erased; plain `username`/`password` only in jobs stored before sealing
        # (the sweep erases those too)
        erased=sealed is None and (CREDENTIALS_KEY in stored or "password" in stored),
    )


TOKEN_BYTES = 24
TOKEN_LENGTH = 32
"""A token is `TOKEN_BYTES` random bytes in unpadded base64url: exactly this many characters
of `[A-Za-z0-9_-]`, every one of the 64 possible in every place."""

JobRef: TypeAlias = int | str
"""A job's numeric id (int), or its token (str)."""


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True, slots=True)
class NewJob:
    job_id: int
    token: str


@dataclass(frozen=True, slots=True)
class JobProgress:
    """A job and its counts, read in one statement (one snapshot): the counts always add up."""

    job_id: int
    created_at: datetime
    total_records: int
    cancelled_at: datetime | None
    total_safe: int
    total_invalid: int
    total_risky: int
    total_unknown: int
    last_counted_at: datetime | None
    importing: bool = False  # its list is still being read: more rows may come
    import_error: str | None = None  # why reading its list ended early
    columns: tuple[str, ...] = ()  # its CSV's other columns, returned in front of the results
    # Per webhook kind, where its deliveries stand; None: the job has no webhook.
    webhook: dict[str, webhooks.DeliveryState] | None = None

    @property
    def total_processed(self) -> int:
        return self.total_safe + self.total_invalid + self.total_risky + self.total_unknown

    @property
    def is_complete(self) -> bool:
        return not self.importing and self.total_processed >= self.total_records

    @property
    def finished_at(self) -> datetime | None:
        """When the last row was counted, once every row is."""
        return self.last_counted_at if self.is_complete else None


@dataclass(frozen=True, slots=True)
class TaskJob:
    """What a worker needs to know about a row's job."""

    options: JobOptions
    cancelled: bool
    created_at: datetime | None = None  # by the database's clock, as the result cache's


async def create(
    session: AsyncSession,
    *,
    total_records: int,
    options: JobOptions,
    source: str | None = None,
    importing: bool = False,
    import_credentials: str | None = None,
    webhook: dict[str, Any] | None = None,
) -> NewJob:
    """A job of `total_records` rows; or, `importing`, one whose rows are added as its list
    (`source`) is read (`add_rows`) until `end_import`. `webhook`: its webhooks as stored
    (`app.webhooks.WebhookConfig.to_json`), each kind given a delivery state."""
    job = BulkJob(
        token=new_token(),
        total_records=total_records,
        options=options.to_json(),
        source=source,
        importing=importing,
        import_credentials=import_credentials,
        webhook=webhook or None,
    )
    session.add(job)
    await session.flush()
    if webhook:
        await webhooks.start(session, job.id, kinds=[k for k, v in webhook.items() if v])
    return NewJob(job_id=job.id, token=job.token)


def _found_by(ref: JobRef) -> ColumnElement[bool]:
    return BulkJob.id == ref if isinstance(ref, int) else BulkJob.token == ref


async def progress(session: AsyncSession, job: JobRef) -> JobProgress | None:
    """The job's progress, found by id or token; None when there is no such job."""
    counters = BulkJobCounter
    statement = (
        select(
            BulkJob.id,
            BulkJob.created_at,
            BulkJob.total_records,
            BulkJob.cancelled_at,
            func.coalesce(func.sum(counters.total_safe), 0),
            func.coalesce(func.sum(counters.total_invalid), 0),
            func.coalesce(func.sum(counters.total_risky), 0),
            func.coalesce(func.sum(counters.total_unknown), 0),
            func.max(counters.last_counted_at),
            BulkJob.importing,
            BulkJob.import_error,
            BulkJob.columns,
            BulkJob.webhook.is_not(None),
        )
        .outerjoin(counters, counters.job_id == BulkJob.id)
        .where(_found_by(job))
        .group_by(BulkJob.id)
    )
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        return None
    return JobProgress(
        job_id=row[0],
        created_at=row[1],
        total_records=row[2],
        cancelled_at=row[3],
        total_safe=int(row[4]),
        total_invalid=int(row[5]),
        total_risky=int(row[6]),
        total_unknown=int(row[7]),
        last_counted_at=row[8],
        importing=row[9],
        import_error=row[10],
        columns=tuple(row[11] or ()),
        webhook=await webhooks.states(session, row[0]) if row[12] else None,
    )


async def for_task(session: AsyncSession, job_id: int) -> TaskJob | None:
    row = (
        await session.execute(
            select(BulkJob.options, BulkJob.cancelled_at, BulkJob.created_at).where(
                BulkJob.id == job_id
            )
        )
    ).one_or_none()
    if row is None:
        return None
    return TaskJob(
        options=JobOptions.from_json(row.options),
        cancelled=row.cancelled_at is not None,
        created_at=row.created_at,
    )


async def mark_cancelled(session: AsyncSession, job_id: int) -> bool:
    """Set `cancelled_at` (once: cancelling twice keeps the first time). False: no such job."""
    found = await session.execute(
        update(BulkJob)
        .where(BulkJob.id == job_id)
        .values(cancelled_at=func.coalesce(BulkJob.cancelled_at, func.now()))
        .returning(BulkJob.id)
    )
    return found.scalar_one_or_none() is not None


async def prune(session: AsyncSession, *, created_before: datetime) -> int:
    """Delete jobs created before the given time, with their results and counters."""
    deleted = await session.execute(
        delete(BulkJob).where(BulkJob.created_at < created_before).returning(BulkJob.id)
    )
    return len(deleted.scalars().all())


@dataclass(frozen=True, slots=True)
class ImportState:
    """Where reading a job's list stands (`app.imports`)."""

    source: str | None
    credentials: str | None  # sealed
    rows: int  # enqueued so far: a resumed import skips them
    columns: list[str] | None
    importing: bool
    cancelled: bool


async def import_state(session: AsyncSession, job_id: int, *, lock: bool = False) -> ImportState:
    statement = select(
        BulkJob.source,
        BulkJob.import_credentials,
        BulkJob.total_records,
        BulkJob.columns,
        BulkJob.importing,
        BulkJob.cancelled_at,
    ).where(BulkJob.id == job_id)
    if lock:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).one()
    return ImportState(
        source=row[0],
        credentials=row[1],
        rows=row[2],
        columns=row[3],
        importing=row[4],
        cancelled=row[5] is not None,
    )


async def add_rows(
    session: AsyncSession, job_id: int, *, count: int, columns: list[str] | None = None
) -> None:
    """Count `count` more rows (their tasks deferred in the same transaction)."""
    values: dict[str, Any] = {"total_records": BulkJob.total_records + count}
    if columns is not None:
        values["columns"] = columns
    await session.execute(update(BulkJob).where(BulkJob.id == job_id).values(**values))


async def end_import(session: AsyncSession, job_id: int, *, error: str | None) -> None:
    """The list is read (or reading it failed): no more rows; its credentials are erased."""
    await session.execute(
        update(BulkJob)
        .where(BulkJob.id == job_id)
        .values(importing=False, import_error=error, import_credentials=None)
    )


async def newest_ids(session: AsyncSession, *, limit: int, offset: int = 0) -> list[int]:
    """A page of job ids, newest first (ids count up), read from the primary key's index."""
    found = await session.scalars(
        select(BulkJob.id).order_by(BulkJob.id.desc()).limit(limit).offset(offset)
    )
    return list(found)
