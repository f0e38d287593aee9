"""Storing a batch of results at once: each row once, each counted once."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import jobs, results
from app.db.results import NewResult


def _row(job_id: int, position: int, verdict: str) -> NewResult:
    email = f"u{position}@example.test"
    return NewResult(job_id, position, email, verdict, {"input": email, "is_reachable": verdict})


async def test_a_batch_is_stored_and_counted_once(db_session: AsyncSession) -> None:
    job_id = (await jobs.create(db_session, total_records=4, options=jobs.JobOptions())).job_id

    first = await results.record_many(
        db_session, [_row(job_id, 0, "safe"), _row(job_id, 1, "invalid"), _row(job_id, 2, "risky")]
    )
    again = await results.record_many(
        db_session, [_row(job_id, 1, "safe"), _row(job_id, 3, "unknown"), _row(job_id, 3, "safe")]
    )
    progress = await jobs.progress(db_session, job_id)

    assert (first, again) == (3, 1)
    assert await results.count(db_session, job_id) == 4
    assert progress is not None
    summary = (
        progress.total_safe,
        progress.total_invalid,
        progress.total_risky,
        progress.total_unknown,
    )
    assert summary == (2, 1, 1, 0)  # position 3 twice in one batch: stored once (the last)
    assert progress.total_processed == 4
