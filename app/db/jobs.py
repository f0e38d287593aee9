"""Bulk jobs: create, read progress, cancel, prune. Repositories flush; callers commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import BulkJob, BulkJobCounter
from app.engine.check import CheckRequest
from app.engine.config import ProxyConfig


@dataclass(frozen=True, slots=True)
class JobOptions:
    """The probe options of a bulk request, as stored on the job for its workers. Unset
    options fall back to the worker's settings."""

    from_email: str | None = None
    hello_name: str | None = None
    proxy: ProxyConfig | None = None
    smtp_ports: tuple[int, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        stored: dict[str, Any] = {}
        if self.from_email is not None:
            stored["from_email"] = self.from_email
        if self.hello_name is not None:
            stored["hello_name"] = self.hello_name
        if self.proxy is not None:
            stored["proxy"] = {
                "host": self.proxy.host,
                "port": self.proxy.port,
                "username": self.proxy.username,
                "password": self.proxy.password,
            }
        if self.smtp_ports:
            stored["smtp_ports"] = list(self.smtp_ports)
        return stored

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> JobOptions:
        proxy = stored.get("proxy")
        ports = stored.get("smtp_ports")
        return cls(
            from_email=stored.get("from_email"),
            hello_name=stored.get("hello_name"),
            proxy=ProxyConfig(
                host=proxy["host"],
                port=int(proxy["port"]),
                username=proxy.get("username"),
                password=proxy.get("password"),
            )
            if proxy
            else None,
            smtp_ports=tuple(int(p) for p in ports) if ports else None,
        )

    def check_request(self, email: str) -> CheckRequest:
        return CheckRequest(
            to_email=email,
            from_email=self.from_email,
            hello_name=self.hello_name,
            proxy=self.proxy,
            smtp_ports=self.smtp_ports,
        )


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

    @property
    def total_processed(self) -> int:
        return self.total_safe + self.total_invalid + self.total_risky + self.total_unknown

    @property
    def is_complete(self) -> bool:
        return self.total_processed >= self.total_records

    @property
    def finished_at(self) -> datetime | None:
        """When the last row was counted, once every row is."""
        return self.last_counted_at if self.is_complete else None


@dataclass(frozen=True, slots=True)
class TaskJob:
    """What a worker needs to know about a row's job."""

    options: JobOptions
    cancelled: bool


async def create(session: AsyncSession, *, total_records: int, options: JobOptions) -> int:
    job = BulkJob(total_records=total_records, options=options.to_json())
    session.add(job)
    await session.flush()
    return job.id


async def progress(session: AsyncSession, job_id: int) -> JobProgress | None:
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
        )
        .outerjoin(counters, counters.job_id == BulkJob.id)
        .where(BulkJob.id == job_id)
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
    )


async def for_task(session: AsyncSession, job_id: int) -> TaskJob | None:
    row = (
        await session.execute(
            select(BulkJob.options, BulkJob.cancelled_at).where(BulkJob.id == job_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return TaskJob(
        options=JobOptions.from_json(row.options), cancelled=row.cancelled_at is not None
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
