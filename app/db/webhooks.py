"""Webhook state of bulk jobs: their configs, the completion check, delivery counts.

`webhook_deliveries` has one row per job and configured kind, made with the job. Each message
counts once, in `delivered` or `given_up`; while it is retried it counts in `failing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, and_, cast, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import BulkJob, BulkJobCounter, BulkResult, WebhookDelivery

ON_COMPLETE = "on_complete"


@dataclass(frozen=True, slots=True)
class DeliveryState:
    delivered: int
    failing: int
    given_up: int
    last_status: int | None
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "failing": self.failing,
            "given_up": self.given_up,
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


async def start(session: AsyncSession, job_id: int, *, kinds: Iterable[str]) -> None:
    """The job's state rows, all counts 0: one per configured kind."""
    rows = [{"job_id": job_id, "kind": kind} for kind in kinds]
    if rows:
        await session.execute(insert(WebhookDelivery), rows)


async def configs(
    session: AsyncSession, job_ids: Iterable[int]
) -> dict[int, dict[str, Any] | None]:
    """Each job's stored webhook (None: none, or no such job)."""
    wanted = list(set(job_ids))
    rows = await session.execute(select(BulkJob.id, BulkJob.webhook).where(BulkJob.id.in_(wanted)))
    found: dict[int, dict[str, Any] | None] = {job_id: webhook for job_id, webhook in rows}
    return {job_id: found.get(job_id) for job_id in wanted}


async def config(session: AsyncSession, job_id: int) -> dict[str, Any] | None:
    """The job's stored webhook (None: none, or no such job)."""
    return (await configs(session, [job_id]))[job_id]


async def completed_now(session: AsyncSession, job_ids: Sequence[int]) -> list[int]:
    """Of these jobs (each with an on_complete webhook, and rows counted in this transaction),
    those whose completion message is to be enqueued now: complete, and not enqueued before.

    Their `on_complete` rows are locked first, in id order: of transactions counting a job's
    last rows concurrently, the last one to lock reads, after the others committed, every row
    counted, so one of them sees the job complete (and `queued_at` keeps it one)."""
    if not job_ids:
        return []
    locked = (
        await session.scalars(
            select(WebhookDelivery.job_id)
            .where(
                WebhookDelivery.job_id.in_(sorted(set(job_ids))),
                WebhookDelivery.kind == ON_COMPLETE,
                WebhookDelivery.queued_at.is_(None),
            )
            .order_by(WebhookDelivery.job_id)
            .with_for_update()
        )
    ).all()
    if not locked:
        return []
    processed = (
        select(
            func.coalesce(
                func.sum(
                    BulkJobCounter.total_safe
                    + BulkJobCounter.total_invalid
                    + BulkJobCounter.total_risky
                    + BulkJobCounter.total_unknown
                ),
                0,
            )
        )
        .where(BulkJobCounter.job_id == BulkJob.id)
        .scalar_subquery()
    )
    complete = (
        await session.scalars(
            select(BulkJob.id).where(
                BulkJob.id.in_(locked),
                BulkJob.cancelled_at.is_(None),
                BulkJob.importing.is_(False),
                processed >= BulkJob.total_records,
            )
        )
    ).all()
    if complete:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.job_id.in_(complete), WebhookDelivery.kind == ON_COMPLETE)
            .values(queued_at=func.now(), updated_at=func.now())
        )
    return list(complete)


async def row_message(
    session: AsyncSession, *, job_id: int, position: int
) -> tuple[dict[str, Any] | None, str] | None:
    """The job's webhook and the row's stored result (JSON text); None: no such row."""
    row = (
        await session.execute(
            select(BulkJob.webhook, cast(BulkResult.output, Text))
            .join(BulkResult, and_(BulkResult.job_id == BulkJob.id))
            .where(BulkJob.id == job_id, BulkResult.position == position)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def states(session: AsyncSession, job_id: int) -> dict[str, DeliveryState]:
    rows = await session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id))
    return {
        row.kind: DeliveryState(
            delivered=row.delivered,
            failing=row.failing,
            given_up=row.given_up,
            last_status=row.last_status,
            last_error=row.last_error,
        )
        for row in rows
    }


async def count_try(
    session: AsyncSession,
    *,
    job_id: int,
    kind: str,
    outcome: str,
    was_failing: bool,
    status: int | None,
    error: str | None,
) -> None:
    """Count one try of a message: `outcome` is "delivered", "failing" (to be retried) or
    "given_up"; `was_failing`: an earlier try of it failed (it counts in `failing`)."""
    row = WebhookDelivery
    values: dict[str, Any] = {
        "last_status": status,
        "last_error": error,
        "updated_at": func.now(),
    }
    if outcome == "failing":
        if not was_failing:
            values["failing"] = row.failing + 1
    else:
        values[outcome] = getattr(row, outcome) + 1
        if was_failing:
            values["failing"] = func.greatest(row.failing - 1, 0)
    await session.execute(
        update(row).where(row.job_id == job_id, row.kind == kind).values(**values)
    )
