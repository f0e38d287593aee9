"""The in-process send-rate limiter: reservations spaced by the interval, no burst."""

from __future__ import annotations

import pytest

from app.engine.probes.limits import LocalRateLimiter
from app.engine.rules.rates import Rate


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_reservations_are_spaced_by_the_interval(clock: Clock) -> None:
    rates = LocalRateLimiter(default=Rate(10, "s"), clock=clock)

    delays = [await rates.reserve("mx.a.test") for _ in range(4)]

    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3])


async def test_time_passing_shortens_the_wait_and_idle_time_is_no_credit(clock: Clock) -> None:
    rates = LocalRateLimiter(default=Rate(1, "s"), clock=clock)
    assert await rates.reserve("mx.a.test") == 0.0
    assert await rates.reserve("mx.a.test") == pytest.approx(1.0)

    clock.now += 1.5
    assert await rates.reserve("mx.a.test") == pytest.approx(0.5)

    clock.now += 60  # a long pause earns no burst: the next two are still one second apart
    assert await rates.reserve("mx.a.test") == 0.0
    assert await rates.reserve("mx.a.test") == pytest.approx(1.0)


async def test_a_batch_books_one_interval_per_rcpt(clock: Clock) -> None:
    rates = LocalRateLimiter(default=Rate(2, "s"), clock=clock)

    assert await rates.reserve("gmail", 5) == 0.0
    assert await rates.reserve("gmail") == pytest.approx(2.5)


async def test_groups_have_their_own_schedules_and_overrides(clock: Clock) -> None:
    rates = LocalRateLimiter(default=Rate(1, "s"), overrides={"gmail": Rate(9, "m")}, clock=clock)

    await rates.reserve("gmail")
    await rates.reserve("mx.a.test")

    assert await rates.reserve("gmail") == pytest.approx(60 / 9)
    assert await rates.reserve("mx.a.test") == pytest.approx(1.0)
    assert await rates.reserve("mx.b.test") == 0.0


async def test_groups_without_a_rate_never_wait_and_are_not_recorded(clock: Clock) -> None:
    rates = LocalRateLimiter(overrides={"gmail": Rate(1, "s")}, clock=clock)

    assert [await rates.reserve("mx.a.test", 100) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rates._next_at == {}


async def test_past_schedules_are_forgotten(clock: Clock) -> None:
    """A default rate over millions of MX hosts keeps only the schedules still ahead."""
    rates = LocalRateLimiter(default=Rate(1, "s"), clock=clock)

    for n in range(5000):
        await rates.reserve(f"mx{n}.test")
        clock.now += 2

    assert len(rates._next_at) <= 1025
    assert await rates.reserve("mx4999.test") == 0.0


async def test_a_reservation_of_nothing_is_a_mistake(clock: Clock) -> None:
    rates = LocalRateLimiter(default=Rate(1, "s"), clock=clock)

    with pytest.raises(ValueError, match="at least 1"):
        await rates.reserve("gmail", 0)
