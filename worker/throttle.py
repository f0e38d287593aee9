"""What a task does when its MX group has no free slot: come back later, as a new task, and
free the worker for addresses on other MXes. Never sleep in the worker. How much later adapts
to the group (`adapt.retry_delay`): soon when it is merely busy with our sessions, later and
later while it turns sessions away or tarpits.

A new task (rather than a retry) keeps `greylist_max_attempts` for real temporary answers. A
crash between the defer and the end of this task just means the row runs twice, and storing
a result is idempotent.
"""

from __future__ import annotations

import random

from procrastinate import JobContext

from app import queue

BASE_DELAY = 0.5  # seconds, for a group only busy with our own sessions (see adapt.retry_delay)


async def defer_again(
    context: JobContext, *, job_id: int, position: int, email: str, delay: float = BASE_DELAY
) -> None:
    """Come back in `delay` to twice that (jittered, so throttled tasks don't return in step)."""
    deferrer = context.app.configure_task(
        queue.VERIFY_TASK,
        queue=queue.VERIFY_QUEUE,
        priority=queue.verify_priority(position),
        schedule_in={"seconds": delay * (1 + random.random())},
    )
    await deferrer.defer_async(job_id=job_id, position=position, email=email)
