"""Sealed proxy credentials are erased once their job has ended (complete or cancelled), and
only then; named proxies and credential-less ones are left as they are."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import jobs, proxy_credentials, results
from app.db.jobs import JobOptions, NamedProxy, RequestProxy

SEALED = RequestProxy(host="proxy.test", port=1080, sealed_credentials="gAAAA-sealed")


async def new_job(session: AsyncSession, *, total: int, done: int, proxy: Any) -> int:
    job_id = (
        await jobs.create(session, total_records=total, options=JobOptions(proxy=proxy))
    ).job_id
    for position in range(done):
        await results.record(
            session,
            job_id=job_id,
            position=position,
            email=f"{position}@x.test",
            verdict="safe",
            output={"input": f"{position}@x.test", "is_reachable": "safe"},
        )
    return job_id


async def stored_options(session: AsyncSession, job_id: int) -> dict[str, Any]:
    row = await session.execute(
        text("SELECT options::text FROM bulk_jobs WHERE id = :id"), {"id": job_id}
    )
    options: dict[str, Any] = json.loads(row.scalar_one())
    return options


async def test_only_ended_jobs_lose_their_credentials(db_session: AsyncSession) -> None:
    running = await new_job(db_session, total=2, done=1, proxy=SEALED)
    complete = await new_job(db_session, total=2, done=2, proxy=SEALED)
    cancelled = await new_job(db_session, total=3, done=0, proxy=SEALED)
    await jobs.mark_cancelled(db_session, cancelled)
    named = await new_job(db_session, total=1, done=1, proxy=NamedProxy("eu"))
    bare = await new_job(
        db_session, total=1, done=1, proxy=RequestProxy(host="proxy.test", port=1080)
    )

    erased = await proxy_credentials.erase_ended(db_session)

    assert erased == [complete, cancelled]
    assert await proxy_credentials.erase_ended(db_session) == []  # idempotent
    assert await stored_options(db_session, running) == {
        "proxy": {"host": "proxy.test", "port": 1080, "credentials": "gAAAA-sealed"}
    }
    for job_id in (complete, cancelled):
        stored = await stored_options(db_session, job_id)
        assert stored == {"proxy": {"host": "proxy.test", "port": 1080, "credentials": None}}
        assert JobOptions.from_json(stored).proxy == RequestProxy(
            host="proxy.test", port=1080, erased=True
        )
    assert await stored_options(db_session, named) == {"proxy": {"name": "eu"}}
    assert await stored_options(db_session, bare) == {"proxy": {"host": "proxy.test", "port": 1080}}


async def test_plain_credentials_of_older_jobs_are_erased_at_once(
    db_session: AsyncSession,
) -> None:
    """Jobs stored before credentials were sealed held them in plain text: erased even while
    the job runs (its rows then say the credentials are gone)."""
    running = await new_job(db_session, total=2, done=0, proxy=None)
    await db_session.execute(
        text("UPDATE bulk_jobs SET options = CAST(:options AS jsonb) WHERE id = :id"),
        {
            "id": running,
            "options": json.dumps(
                {"proxy": {"host": "p.test", "port": 1080, "username": "u", "password": "pw"}}
            ),
        },
    )

    assert await proxy_credentials.erase_ended(db_session) == [running]

    stored = await stored_options(db_session, running)
    assert stored == {"proxy": {"host": "p.test", "port": 1080, "credentials": None}}
    assert JobOptions.from_json(stored).proxy == RequestProxy(host="p.test", port=1080, erased=True)
