"""Per-MX send rates shared by every process, as one schedule row per MX group.

Table `mx_rates` holds, for each rate-limited group, the moment its next RCPT may go out.
A reservation is one INSERT ... ON CONFLICT DO UPDATE: PostgreSQL's row lock orders concurrent
reservations, and every time comes from the database's clock, so any number of workers on any
number of hosts (with skewed clocks) book one schedule with no gap and no double booking. A
row whose time is past means the same as no row, so a process that dies leaves nothing to
clean up. Groups without a rate never reach the database.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg  # type: ignore[import-untyped]

from app.db.unavailable import SharedStore
from app.engine.rules.rates import Rate, Rates

# $2 is the span booked (count x interval, in seconds). The clock is read once, in `now`, so
# the delay returned is exactly the booked send time minus that moment. A reservation that
# waited for another's row lock computes its delay from before the wait: it can only err late.
_RESERVE = """
WITH now AS MATERIALIZED (SELECT clock_timestamp() AS t),
booked AS (
    INSERT INTO mx_rates AS r (key, next_at)
    SELECT $1::text, now.t + $2::float8 * interval '1 second' FROM now
    ON CONFLICT (key) DO UPDATE
        SET next_at = greatest(r.next_at + $2::float8 * interval '1 second', excluded.next_at)
    RETURNING r.next_at
)
SELECT extract(epoch FROM booked.next_at - now.t)::float8 - $2::float8 FROM booked, now
"""


class PostgresRateLimiter(SharedStore):
    """`RateLimiter` whose schedules hold across all worker processes and hosts (its
    connection is opened again after an outage; a reservation meanwhile raises
    `StoreUnavailable`)."""

    STORE = "MX send rates"

    def __init__(
        self,
        connection: asyncpg.Connection,
        *,
        default: Rate | None = None,
        overrides: Mapping[str, Rate] | None = None,
        dsn: str | None = None,
    ) -> None:
        super().__init__(connection, dsn=dsn)
        self._rates = Rates(default, dict(overrides or {}))

    @classmethod
    async def connect(
        cls, dsn: str, *, default: Rate | None = None, overrides: Mapping[str, Rate] | None = None
    ) -> PostgresRateLimiter:
        connection = await asyncpg.connect(dsn)
        return cls(connection, default=default, overrides=overrides, dsn=dsn)

    async def reserve(self, key: str, count: int = 1) -> float:
        span = self._rates.span(key, count)
        if not span:
            return 0.0
        async with self._shared() as conn:
            delay = await conn.fetchval(_RESERVE, key, span)
        return max(float(delay), 0.0)
