"""Erasing the sealed proxy credentials of bulk jobs that have ended.

A job with a free-form proxy keeps its credentials (sealed, `app.sealing`) only while workers
may still need them: once every row is counted, or the job is cancelled, the token is
replaced by null (`jobs.RequestProxy.erased`). The workers' periodic sweep calls this; it is
idempotent, and catches up on whatever ended while no worker ran.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.jobs import CREDENTIALS_KEY

_ERASE_ENDED = text(
    "UPDATE bulk_jobs AS j "
    "SET options = jsonb_set("
    "    j.options #- '{proxy,username}' #- '{proxy,password}', "
    "    ARRAY['proxy', :key], 'null'::jsonb) "
    "WHERE (jsonb_typeof(j.options #> ARRAY['proxy', :key]) = 'string' "
    # plain credentials of jobs stored before sealing: erased at once, ended or not
    "       OR j.options #> '{proxy,password}' IS NOT NULL "
    "       OR j.options #> '{proxy,username}' IS NOT NULL) "
    "  AND (j.cancelled_at IS NOT NULL "
    "       OR NOT j.importing "
    "          AND j.total_records <= (SELECT coalesce(sum(c.total_safe + c.total_invalid "
    "                                                  + c.total_risky + c.total_unknown), 0) "
    "                                 FROM bulk_job_counters AS c WHERE c.job_id = j.id) "
    "       OR j.options #> '{proxy,password}' IS NOT NULL "
    "       OR j.options #> '{proxy,username}' IS NOT NULL) "
    "RETURNING j.id"
)


async def erase_ended(session: AsyncSession) -> list[int]:
    """Erase the proxy credentials of every job that is complete or cancelled; the ids of
    the jobs that had some."""
    erased = await session.execute(_ERASE_ENDED, {"key": CREDENTIALS_KEY})
    return sorted(int(job_id) for job_id in erased.scalars())
