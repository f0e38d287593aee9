"""When a verification task runs again: a table of decisions, no queue."""

from __future__ import annotations

import asyncio

import pytest
from procrastinate.exceptions import JobAborted

from worker import retry


@pytest.mark.parametrize(
    ("attempts_done", "max_attempts", "again"),
    [
        (0, 1, False),
        (0, 2, True),
        (1, 2, False),
        (0, 3, True),
        (1, 3, True),
        (2, 3, False),
        (5, 3, False),
    ],
)
def test_temporary_answers_are_retried_until_the_last_attempt(
    attempts_done: int, max_attempts: int, again: bool
) -> None:
    assert retry.retry_temporary(attempts_done=attempts_done, max_attempts=max_attempts) is again


@pytest.mark.parametrize(
    ("exception", "attempts_done", "delay"),
    [
        (retry.TemporaryAnswer("451", retry_in=300.0), 0, 300.0),
        (retry.TemporaryAnswer("451", retry_in=1.0), 7, 1.0),
        (asyncio.CancelledError(), 3, 0.0),
        (JobAborted(), 0, 0.0),
        (RuntimeError("db down"), 0, 2.0),
        (RuntimeError("db down"), 1, 4.0),
        (RuntimeError("db down"), 6, 128.0),
        (RuntimeError("db down"), retry.CRASH_ATTEMPTS - 1, None),
        (KeyboardInterrupt(), 0, None),
    ],
)
def test_decide(exception: BaseException, attempts_done: int, delay: float | None) -> None:
    assert retry.decide(exception, attempts_done=attempts_done) == delay


def test_crash_backoff_is_capped() -> None:
    delays = [retry.crash_backoff(attempts_done=n) for n in range(retry.CRASH_ATTEMPTS - 1)]

    assert all(d is not None and d <= retry.CRASH_BACKOFF_MAX for d in delays)
    assert retry.is_last_run(attempts_done=retry.CRASH_ATTEMPTS - 1)
    assert not retry.is_last_run(attempts_done=0)
