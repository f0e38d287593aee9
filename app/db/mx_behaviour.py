"""The behaviour cache shared by every process: one row of recent counts per MX group.

Each process adds what it saw since its last exchange in ONE statement (INSERT ... SELECT FROM
unnest ... ON CONFLICT DO UPDATE), then reads back every group updated recently. Counts are
recent counts (`adapt.HALF_LIFE`): a row's values are decayed by their age before the new
ones are added, and again when read, so no job ever has to expire anything, and every age is
measured on the database's clock, whatever the hosts' clocks say. The latency is the mean
weighted the same way. Rows are upserted in key order, so two processes flushing overlapping
groups lock them in the same order and cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg  # type: ignore[import-untyped]

from app.db.unavailable import SharedStore
from app.engine.rules.adapt import HALF_LIFE, MxStats

READ_WINDOW = 4 * HALF_LIFE
"""Rows older than this (weighing 1/16 or less) are not read: they would change no timeout."""


def _decay(row: str, half_life: str) -> str:
    # The age is capped so that power() cannot underflow (an error in PostgreSQL), and floored
    # at 0 for a row another transaction, begun after ours, has just written.
    return (
        f"power(0.5::float8, least(greatest("
        f"extract(epoch FROM now() - {row}.updated_at)::float8 / {half_life}, 0.0), 60.0))"
    )


_D = _decay("b", "$7::float8")
_EXCHANGE = f"""
INSERT INTO mx_behaviour AS b (key, replies, latency_ewma, timeouts, busy, tarpits, updated_at)
SELECT d.key, d.replies, d.latency_ewma, d.timeouts, d.busy, d.tarpits, now()
FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::float8[], $6::float8[])
    AS d(key, replies, latency_ewma, timeouts, busy, tarpits)
ORDER BY d.key
ON CONFLICT (key) DO UPDATE SET
    replies = b.replies * {_D} + excluded.replies,
    latency_ewma = CASE
        WHEN excluded.latency_ewma IS NULL THEN b.latency_ewma
        WHEN b.latency_ewma IS NULL OR b.replies * {_D} + excluded.replies <= 0
            THEN excluded.latency_ewma
        ELSE (b.latency_ewma * b.replies * {_D} + excluded.latency_ewma * excluded.replies)
            / (b.replies * {_D} + excluded.replies)
    END,
    timeouts = b.timeouts * {_D} + excluded.timeouts,
    busy = b.busy * {_D} + excluded.busy,
    tarpits = b.tarpits * {_D} + excluded.tarpits,
    updated_at = now()
"""

_READ = f"""
SELECT key, replies * d AS replies, latency_ewma, timeouts * d AS timeouts, busy * d AS busy,
       tarpits * d AS tarpits
FROM (
    SELECT *, {_decay("mx_behaviour", "$1::float8")} AS d FROM mx_behaviour
    WHERE updated_at > now() - $2::float8 * interval '1 second'
) AS recent
"""


class PostgresBehaviourStore(SharedStore):
    """`BehaviourStore` on table `mx_behaviour`, on one connection of its own (opened again
    after an outage: a sync that failed, with `StoreUnavailable`, is tried again at the next
    interval)."""

    STORE = "MX behaviour"

    @classmethod
    async def connect(cls, dsn: str) -> PostgresBehaviourStore:
        return cls(await asyncpg.connect(dsn), dsn=dsn)

    async def exchange(self, deltas: Mapping[str, MxStats]) -> dict[str, MxStats]:
        keys = sorted(deltas)
        rows = [deltas[key] for key in keys]
        async with self._shared() as conn:
            if keys:
                await conn.execute(
                    _EXCHANGE,
                    keys,
                    [r.replies for r in rows],
                    [r.latency_ewma for r in rows],
                    [r.timeouts for r in rows],
                    [r.busy for r in rows],
                    [r.tarpits for r in rows],
                    HALF_LIFE,
                )
            recent = await conn.fetch(_READ, HALF_LIFE, READ_WINDOW)
        return {
            row["key"]: MxStats(
                replies=row["replies"],
                latency_ewma=row["latency_ewma"],
                timeouts=row["timeouts"],
                busy=row["busy"],
                tarpits=row["tarpits"],
            )
            for row in recent
        }
