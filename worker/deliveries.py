"""`deliver_webhook`: one try of one webhook message (`app.webhooks`), counted in the job's
delivery state.

A non-2xx answer, no answer within `webhook_timeout`, or a refused URL (a name resolving to a
private address) is a failed try: the task raises `retry.TemporaryAnswer` and the queue runs it
again after a doubling delay, until `webhook_retry_for` seconds after its first try; then the
message is given up (counted, not raised). The message's `webhook-id` is the same on each try.

A worker posts at most `webhook_concurrency` messages at once. A message that finds them all
taken is not tried: it goes back to the queue as a new task behind the verifications
(`queue.WEBHOOK_LATER_PRIORITY`), a little later each time (`LATER_DELAYS`), its tries so far
carried over, so a slow receiver holds a few of a worker's slots, never all of them.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from procrastinate import JobContext

from app import bulk, fetch, queue, webhooks
from app.db import jobs
from app.db import webhooks as webhook_state
from app.db.session import session_scope
from app.engine import Resolver
from worker import retry
from worker.tasks import deps_of

log = logging.getLogger(__name__)

LATER_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
"""Seconds (up to twice that, jittered) before a message that found no free slot comes back:
the n-th time it is sent back, the n-th delay (the last, from then on)."""


async def deliver_webhook(
    context: JobContext,
    *,
    job_id: int,
    kind: str,
    position: int | None = None,
    first_try: float,
    tries_before: int = 0,
    sent_back: int = 0,
) -> str:
    """`tries_before`: tries made by the tasks this one was sent back from; `sent_back`: how
    many times the message found no free slot."""
    message: dict[str, Any] = {
        "job_id": job_id,
        "kind": kind,
        "position": position,
        "first_try": first_try,
    }
    tries = tries_before + context.job.attempts
    slots = deps_of(context).webhook_slots
    if slots.locked():
        await _later(context, message, tries_before=tries, sent_back=sent_back)
        return "sent back: this worker's webhook deliveries are all in flight"
    async with slots:
        return await _deliver(context, attempts_done=tries, **message)


async def _later(
    context: JobContext, message: dict[str, Any], *, tries_before: int, sent_back: int
) -> None:
    """The message as a new task behind the verifications, a little later each time."""
    delay = LATER_DELAYS[min(sent_back, len(LATER_DELAYS) - 1)]
    deferrer = context.app.configure_task(
        queue.WEBHOOK_TASK,
        queue=queue.WEBHOOK_QUEUE,
        priority=queue.WEBHOOK_LATER_PRIORITY,
        schedule_in={"seconds": delay * (1 + random.random())},
    )
    await deferrer.defer_async(**message, tries_before=tries_before, sent_back=sent_back + 1)


async def _deliver(
    context: JobContext,
    *,
    job_id: int,
    kind: str,
    position: int | None,
    first_try: float,
    attempts_done: int,
) -> str:
    deps = deps_of(context)
    settings = deps.settings
    async with session_scope(deps.sessions) as session:
        if kind == webhooks.ON_EACH_EMAIL:
            assert position is not None
            found = await webhook_state.row_message(session, job_id=job_id, position=position)
            if found is None:
                return "skipped: row deleted"
            stored, output_json = found
            config = webhooks.WebhookConfig.from_json(stored)
            endpoint = config.on_each_email if config else None
            body = (
                webhooks.row_body(output_json=output_json, extra=endpoint.extra)
                if endpoint
                else b""
            )
        else:
            progress = await jobs.progress(session, job_id)
            if progress is None:
                return "skipped: job deleted"
            config = webhooks.WebhookConfig.from_json(await webhook_state.config(session, job_id))
            endpoint = config.on_complete if config else None
            body = (
                webhooks.complete_body(status=bulk.status_body(progress), extra=endpoint.extra)
                if endpoint
                else b""
            )
    if endpoint is None:
        return "skipped: no such webhook"

    msg_id = webhooks.message_id(job_id=job_id, kind=kind, position=position)
    status: int | None = None
    error: str | None = None
    try:
        status = await webhooks.post(
            endpoint,
            body,
            msg_id=msg_id,
            settings=settings,
            resolver=Resolver(settings.dns_config()),
        )
    except fetch.FetchError as exc:
        error = exc.message
    if status is not None and 200 <= status < 300:
        outcome = "delivered"
    else:
        error = error or f"HTTP {status}"
        delay = webhooks.retry_delay(attempts_done=attempts_done, settings=settings)
        late = time.time() + delay - first_try > settings.webhook_retry_for
        outcome = "given_up" if late else "failing"
    async with session_scope(deps.sessions) as session:
        await webhook_state.count_try(
            session,
            job_id=job_id,
            kind=kind,
            outcome=outcome,
            was_failing=attempts_done > 0,
            status=status,
            error=error,
        )
    if outcome == "failing":
        raise retry.TemporaryAnswer(
            f"webhook {msg_id} of job {job_id} failed ({error}); retried in {delay:g} s",
            retry_in=delay,
        )
    if outcome == "given_up":
        log.warning("webhook %s of job %s given up: %s", msg_id, job_id, error)
    return outcome
