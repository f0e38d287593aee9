"""Periodic maintenance, run by whichever worker's deferrer gets there first (procrastinate
makes each tick run once across all workers).

- `retry_stalled_jobs`: procrastinate notices dead workers (no heartbeat for
  `worker_stalled_timeout`) but does not retry their jobs by itself. This runs its stalled-job
  query and puts those jobs back in the queue, so a worker killed with -9 loses nothing.
- `prune`: deletes bulk jobs older than `result_retention_days`, with their results, and the
  shared MX state nobody needs any more (send schedules in the past, behaviour rows too old
  to be read), and result cache entries older than `result_cache_ttl` (all of them when the
  cache is off) and claims that expired.
- `prune_queue`: deletes failed and aborted procrastinate jobs past the same age (succeeded
  ones are deleted as they finish, cancelled ones when cancelled).
- `forget_proxy_credentials`: every minute, erases the sealed proxy credentials of bulk jobs
  that are complete or cancelled (`app.db.proxy_credentials`).
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta

from procrastinate import App, JobContext
from procrastinate.exceptions import ConnectorException
from sqlalchemy import text

from app import queue
from app.db import jobs, proxy_credentials, result_cache
from app.db.mx_behaviour import READ_WINDOW
from app.db.session import session_scope
from app.settings import Settings
from worker.tasks import deps_of

log = logging.getLogger(__name__)

_FORGET_MX_STATE = text(
    "WITH rates AS (DELETE FROM mx_rates WHERE next_at < now() - interval '1 hour'), "
    "budgets AS (DELETE FROM mx_budgets WHERE updated_at < now() - interval '1 day') "
    "DELETE FROM mx_behaviour WHERE updated_at < now() - make_interval(secs => :window)"
)

RETRY_STALLED_TASK = f"{queue.NAMESPACE}:retry_stalled_jobs"
PRUNE_TASK = f"{queue.NAMESPACE}:prune"
PRUNE_QUEUE_TASK = f"{queue.NAMESPACE}:prune_queue"
FORGET_PROXY_CREDENTIALS_TASK = f"{queue.NAMESPACE}:forget_proxy_credentials"


def stalled_check_every(settings: Settings) -> int:
    """Seconds between stalled-job checks: a third of the stalled timeout, 1 to 60."""
    return max(1, min(60, math.floor(settings.worker_stalled_timeout / 3)))


def every_seconds(seconds: int) -> str:
    """A cron with procrastinate's optional sixth (seconds) column."""
    return f"* * * * * */{seconds}"


def register(app: App, settings: Settings) -> None:
    maintenance = queue.MAINTENANCE_QUEUE
    # Ahead of any backlog: workers fetch by priority, then id, whatever the queue.
    stalled = app.task(name=RETRY_STALLED_TASK, queue=maintenance, pass_context=True, priority=100)(
        retry_stalled_jobs
    )
    app.periodic(cron=every_seconds(stalled_check_every(settings)))(stalled)
    pruner = app.task(name=PRUNE_TASK, queue=maintenance, pass_context=True)(prune)
    app.periodic(cron="17 * * * *")(pruner)
    queue_pruner = app.task(name=PRUNE_QUEUE_TASK, queue=maintenance, pass_context=True)(
        prune_queue
    )
    app.periodic(cron="43 3 * * *")(queue_pruner)
    forgetter = app.task(name=FORGET_PROXY_CREDENTIALS_TASK, queue=maintenance, pass_context=True)(
        forget_proxy_credentials
    )
    app.periodic(cron="* * * * *")(forgetter)


async def retry_stalled_jobs(context: JobContext, timestamp: int) -> int:
    settings = deps_of(context).settings
    manager = context.app.job_manager
    stalled = await manager.get_stalled_jobs(
        seconds_since_heartbeat=settings.worker_stalled_timeout
    )
    retried = 0
    for job in stalled:
        if job.id == context.job.id:
            continue
        try:
            await manager.retry_job(job)
        except ConnectorException:
            continue  # it finished (or was retried) in the meantime
        retried += 1
    await manager.prune_stalled_workers(settings.worker_stalled_timeout)
    if retried:
        log.warning("retried %d jobs of stalled workers", retried)
    return retried


async def prune(context: JobContext, timestamp: int) -> int:
    deps = deps_of(context)
    cutoff = datetime.now(UTC) - timedelta(days=deps.settings.result_retention_days)
    async with session_scope(deps.sessions) as session:
        deleted = await jobs.prune(session, created_before=cutoff)
        await session.execute(_FORGET_MX_STATE, {"window": READ_WINDOW})
        expired = await result_cache.prune(session, ttl=deps.settings.result_cache_ttl)
    if expired:
        log.info("pruned %d result cache entries", expired)
    if deleted:
        log.info("pruned %d bulk jobs created before %s", deleted, cutoff.isoformat())
    return deleted


async def forget_proxy_credentials(context: JobContext, timestamp: int) -> int:
    """Erase the proxy credentials of ended jobs; how many jobs had some."""
    async with session_scope(deps_of(context).sessions) as session:
        erased = await proxy_credentials.erase_ended(session)
    if erased:
        log.info("erased the proxy credentials of ended bulk jobs %s", erased)
    return len(erased)


async def prune_queue(context: JobContext, timestamp: int) -> None:
    settings = deps_of(context).settings
    await context.app.job_manager.delete_old_jobs(
        nb_hours=max(1, math.ceil(settings.result_retention_days * 24)),
        include_failed=True,
        include_cancelled=True,
        include_aborted=True,
    )
