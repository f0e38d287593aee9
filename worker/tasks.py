"""The task bodies. `register(app)` adds them to a procrastinate App under app.queue's names.

`verify_address` is one input row: read its job (options, cancelled?), run the engine with no
database connection held, then store the result and count it in one short transaction. Storing
is idempotent (see app.db.results.record): a task run twice stores and counts its row once.
The engine is asked through the result cache (`app.cache`): a recent result of the same address
and options is the row's result; one being probed by another task sends this one back to the
queue for a moment (`InFlight`), so a list's duplicates are probed once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cachetools import TTLCache
from procrastinate import App, JobContext, RetryStrategy
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import imports, logs, metrics, queue
from app.cache import InFlight, ResultCache
from app.db import jobs, results
from app.db.session import session_scope
from app.engine import CheckEmailOutput, NoSlot, Reachable, Verification, Verifier, syntax_of
from app.engine.model import (
    CoreError,
    DebugDetails,
    DebugSmtp,
    Duration,
    MiscDetails,
    MxError,
    SmtpError,
    VerifMethod,
)
from app.engine.rules import adapt
from app.settings import Settings
from worker import options, retry, throttle
from worker.writer import ResultWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Deps:
    """What tasks use, built once per worker process by worker.main and handed to every task
    through procrastinate's `additional_context`."""

    settings: Settings
    verifier: Verifier
    sessions: async_sessionmaker[AsyncSession]
    writer: ResultWriter
    # A job's options and cancelled flag, remembered briefly: thousands of rows of one job
    # would otherwise each read the same row. (Cancelling also removes waiting tasks at once.)
    jobs_seen: TTLCache[int, jobs.TaskJob | None] = field(
        default_factory=lambda: TTLCache(maxsize=1024, ttl=2.0)
    )
    # Webhook POSTs this worker has in flight: at most settings.webhook_concurrency.
    webhook_slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        slots = asyncio.Semaphore(self.settings.webhook_concurrency)
        object.__setattr__(self, "webhook_slots", slots)  # frozen


def deps_of(context: JobContext) -> Deps:
    deps = context.additional_context["deps"]
    assert isinstance(deps, Deps)
    return deps


def register(app: App) -> None:
    app.task(
        name=queue.VERIFY_TASK,
        queue=queue.VERIFY_QUEUE,
        pass_context=True,
        retry=retry.VerifyRetryStrategy(),
    )(verify_address)
    app.task(
        name=queue.IMPORT_TASK,
        queue=queue.IMPORT_QUEUE,
        pass_context=True,
        # A crash (the database gone mid-import, a bug) runs it again: it skips what is counted.
        retry=RetryStrategy(max_attempts=10, exponential_wait=2),
    )(import_list)
    from worker import deliveries  # here: it imports this module (deps_of)

    app.task(
        name=queue.WEBHOOK_TASK,
        queue=queue.WEBHOOK_QUEUE,
        pass_context=True,
        retry=retry.VerifyRetryStrategy(),
    )(deliveries.deliver_webhook)


async def import_list(context: JobContext, *, job_id: int) -> None:
    """Read a job's list from its URL into rows (`app.imports`)."""
    deps = deps_of(context)
    await imports.import_url(deps.sessions, job_id, settings=deps.settings)


async def verify_address(context: JobContext, *, job_id: int, position: int, email: str) -> str:
    deps = deps_of(context)
    attempts_done = context.job.attempts
    if job_id in deps.jobs_seen:
        job = deps.jobs_seen[job_id]
    else:
        async with session_scope(deps.sessions) as session:
            job = await jobs.for_task(session, job_id)
        deps.jobs_seen[job_id] = job
    if job is None:
        return "skipped: job deleted"
    if job.cancelled:
        return "skipped: job cancelled"

    try:
        request = options.check_request(job.options, email, settings=deps.settings)
        fresh = job.options.fresh
        checked = await ResultCache.from_settings(deps.settings, deps.sessions).verify(
            deps.verifier,
            request,
            fresh=fresh,
            fresh_since=job.created_at if fresh else None,
            wait=False,
            holder=f"row {job_id}:{position}",
        )
    except InFlight as exc:
        # The same address (a duplicate row, another job) is being probed now: come back for
        # its result rather than probe it twice.
        log.debug("row %s of job %s: %s; deferred", position, job_id, exc)
        await throttle.defer_again(context, job_id=job_id, position=position, email=email)
        return "waiting: the same address is being checked"
    except options.ProxyUnavailable as exc:
        # This worker's settings lack the job's proxy: no retry helps, no crash loop.
        log.warning("row %s of job %s: %s", position, job_id, exc)
        output = options.unavailable_output(failed_output(email, exc), exc)
        checked = Verification(output, try_again=False)
    except NoSlot as exc:
        # Every slot of this MX group is busy: give the worker to other MXes and come back.
        seen = deps.verifier.pool.behaviour.stats(exc.key) if exc.key else None
        delay = adapt.retry_delay(seen, base=throttle.BASE_DELAY)
        log.info("row %s of job %s: %s; deferred by %.1f s", position, job_id, exc, delay)
        await throttle.defer_again(
            context, job_id=job_id, position=position, email=email, delay=delay
        )
        return "throttled: re-deferred"
    except Exception as exc:
        if not retry.is_last_run(attempts_done=attempts_done):
            raise
        log.exception("verifying row %s of job %s failed on every attempt", position, job_id)
        checked = Verification(failed_output(email, exc), try_again=False)

    output = checked.output
    if checked.try_again:
        if retry.retry_temporary(
            attempts_done=attempts_done, max_attempts=deps.settings.greylist_max_attempts
        ):
            raise retry.TemporaryAnswer(
                f"temporary answer for row {position} of job {job_id}",
                retry_in=deps.settings.greylist_retry_delay,
            )
        output = output.model_copy(update={"is_reachable": Reachable.UNKNOWN})

    await deps.writer.write(
        results.NewResult(
            job_id=job_id,
            position=position,
            email=email,
            verdict=output.is_reachable.value,
            output=output.to_json(),
        )
    )
    metrics.count_check(output)
    logs.verification(output, job_id=job_id, row=position)
    return output.is_reachable.value


def failed_output(email: str, exc: Exception) -> CheckEmailOutput:
    """An `unknown` result for a row the engine could not check at all (a bug): stored so the
    job still completes, with what went wrong in the errors."""
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    error = CoreError(type="InternalError", message=f"{type(exc).__name__}: {exc}")
    return CheckEmailOutput(
        input=email,
        is_reachable=Reachable.UNKNOWN,
        misc=MiscDetails(),
        mx=MxError(error=error),
        smtp=SmtpError(error=error),
        syntax=syntax_of(email),
        debug=DebugDetails(
            backend_name="mxprobe",
            start_time=now,
            end_time=now,
            duration=Duration(secs=0, nanos=0),
            smtp=DebugSmtp(verif_method=VerifMethod(type="Skipped")),
        ),
    )
