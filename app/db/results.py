"""Per-row results: the idempotent insert that also counts, and the ordered streams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Integer, Text, cast, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import COUNTER_SHARDS, VERDICTS, BulkJobCounter, BulkResult


async def record(
    session: AsyncSession,
    *,
    job_id: int,
    position: int,
    email: str,
    verdict: str,
    output: dict[str, Any],
) -> bool:
    """Store row `position`'s result and count it, in one statement, at most once.

    The result insert does nothing when the row is already stored (a task retried after a
    crash, or run twice by a worker wrongly thought dead); the counter upsert reads only
    what the insert returned, so a row is counted exactly when it is stored. Returns whether
    this call stored it.
    """
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}")
    inserted = (
        insert(BulkResult)
        .values(job_id=job_id, position=position, email=email, verdict=verdict, output=output)
        .on_conflict_do_nothing(index_elements=[BulkResult.job_id, BulkResult.position])
        .returning(BulkResult.verdict)
        .cte("inserted")
    )
    counts = select(
        literal(job_id).label("job_id"),
        literal(position % COUNTER_SHARDS).label("shard"),
        *(cast(inserted.c.verdict == name, Integer).label(f"total_{name}") for name in VERDICTS),
        func.now().label("last_counted_at"),
    ).select_from(inserted)
    add = insert(BulkJobCounter).from_select(
        ["job_id", "shard", *(f"total_{name}" for name in VERDICTS), "last_counted_at"], counts
    )
    upsert = add.on_conflict_do_update(
        index_elements=[BulkJobCounter.job_id, BulkJobCounter.shard],
        set_={
            **{
                f"total_{name}": getattr(BulkJobCounter, f"total_{name}")
                + getattr(add.excluded, f"total_{name}")
                for name in VERDICTS
            },
            "last_counted_at": add.excluded.last_counted_at,
        },
    ).returning(BulkJobCounter.shard)
    counted = (await session.execute(upsert)).first()
    return counted is not None


async def count(session: AsyncSession, job_id: int) -> int:
    """Rows stored for a job (a full count: for tests and checks, not for the status route)."""
    total = await session.scalar(
        select(func.count()).select_from(BulkResult).where(BulkResult.job_id == job_id)
    )
    return int(total or 0)


async def stream_json(
    session: AsyncSession, job_id: int, *, batch_size: int = 1000
) -> AsyncIterator[Sequence[str]]:
    """Each stored result's JSON text, in input order, `batch_size` rows at a time, from a
    server-side cursor: memory stays flat whatever the job's size."""
    statement = (
        select(cast(BulkResult.output, Text))
        .where(BulkResult.job_id == job_id)
        .order_by(BulkResult.position)
    )
    stream = await session.stream_scalars(statement, execution_options={"yield_per": batch_size})
    async for partition in stream.partitions():
        yield partition


async def stream_outputs(
    session: AsyncSession, job_id: int, *, batch_size: int = 1000
) -> AsyncIterator[Iterator[dict[str, Any]]]:
    """Each stored result, decoded, in input order, `batch_size` rows at a time.

    Each batch decodes lazily, one row at a time as it is consumed: a million-row CSV export
    then never holds a batch of parsed results, which keeps Python's cyclic GC quiet (holding
    them tripled the time per row). orjson decodes several times faster than json.
    """
    async for partition in stream_json(session, job_id, batch_size=batch_size):
        yield (orjson.loads(text) for text in partition)
