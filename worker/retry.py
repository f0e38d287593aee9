"""When a verification task runs again. Pure decisions, plus the procrastinate strategy that
applies them.

- The mail server answered "try later" (a 4xx: greylisting, a full queue): the task raises
  `TemporaryAnswer` and runs again after `greylist_retry_delay`, up to `greylist_max_attempts`
  runs in all; the last run stores its answer as `unknown`. The worker never sleeps on it.
- The task crashed (database down, a bug): again with exponential backoff, a few times.
- The worker was stopped mid-task: again at once, on whichever worker is up.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from procrastinate import BaseRetryStrategy, RetryDecision
from procrastinate.exceptions import JobAborted
from procrastinate.jobs import Job

CRASH_ATTEMPTS = 8
CRASH_BACKOFF_BASE = 2.0
CRASH_BACKOFF_MAX = 300.0


class TemporaryAnswer(Exception):
    """The address got a temporary answer; run its task again in `retry_in` seconds."""

    def __init__(self, message: str, *, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


def retry_temporary(*, attempts_done: int, max_attempts: int) -> bool:
    """Should a temporary answer be retried? `attempts_done` counts earlier runs of the task
    (procrastinate's `job.attempts`: 0 on the first run)."""
    return attempts_done + 1 < max_attempts


def crash_backoff(*, attempts_done: int) -> float | None:
    """Seconds before running a crashed task again, or None: give up."""
    if attempts_done + 1 >= CRASH_ATTEMPTS:
        return None
    return min(CRASH_BACKOFF_MAX, CRASH_BACKOFF_BASE ** (attempts_done + 1))


def is_last_run(*, attempts_done: int) -> bool:
    """A crash on this run would not be retried."""
    return crash_backoff(attempts_done=attempts_done) is None


def decide(exception: BaseException, *, attempts_done: int) -> float | None:
    """Seconds until the next run, or None for no retry."""
    if isinstance(exception, TemporaryAnswer):
        return exception.retry_in
    if isinstance(exception, asyncio.CancelledError | JobAborted):
        return 0.0  # stopped with the worker: not the task's fault
    if isinstance(exception, Exception):
        return crash_backoff(attempts_done=attempts_done)
    return None


class VerifyRetryStrategy(BaseRetryStrategy):
    """procrastinate's hook: `decide`, applied to the job that just failed."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        delay = decide(exception, attempts_done=job.attempts)
        if delay is None:
            return None
        return RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=delay))
