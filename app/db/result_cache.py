"""The result cache's table (`ResultCacheRow`): read a fresh result or claim the probe, store,
release, prune. Repositories flush; callers commit (each call here is meant to be its own
short transaction: a claim is only seen by others once committed).

A key's row holds the last cacheable result probed for it (`checked_at`), and, while a probe
of it is in flight, a claim (`claimed_until`). `lookup_or_claim` does both in one statement:
a result checked at or after `not_before` is returned; otherwise the caller takes the claim
unless another holds one that has not expired, in which case it should wait for that probe's
result. A claim names its holder (`claimed_by`, a bulk row): the same holder takes its own claim
back at once (the row retried after its worker was killed mid-probe); any other claim that
outlives its holder simply expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_NOT_DURABLE = text("SET LOCAL synchronous_commit = off")
"""Each call is its own short transaction, and losing its last few on a crash of the server
loses only cache entries and claims (which expire): not worth waiting for the disk."""


async def _not_durable(session: AsyncSession) -> None:
    await session.execute(_NOT_DURABLE)


@dataclass(frozen=True, slots=True)
class Cached:
    output: dict[str, Any]
    checked_at: datetime
    age_seconds: float


@dataclass(frozen=True, slots=True)
class Lookup:
    """`cached`: a fresh enough result. `claimed`: none, and this caller now holds the key's
    claim: it probes, then `store`s or `release`s. Neither: another probe of the key is in
    flight; ask again a little later."""

    cached: Cached | None = None
    claimed: bool = False


# `existing` reads the row as it was when the statement began; `claim` inserts or takes it
# over only if it holds no fresh result and no live claim (re-checked on the current row
# version when another transaction held it). A hit writes nothing.
_LOOKUP_OR_CLAIM = text(
    """
WITH bound AS (
    SELECT GREATEST(now() - make_interval(secs => :ttl),
                    CAST(:fresh_since AS timestamptz)) AS not_before
), existing AS (
    SELECT c.output, c.checked_at
      FROM result_cache AS c, bound
     WHERE c.key = :key AND c.checked_at >= bound.not_before
), claim AS (
    INSERT INTO result_cache AS c (key, email, claimed_until, claimed_by)
    SELECT :key, :email, now() + make_interval(secs => :claim_for), :holder
     WHERE NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (key) DO UPDATE
       SET claimed_until = excluded.claimed_until, claimed_by = excluded.claimed_by
     WHERE (c.checked_at IS NULL OR c.checked_at < (SELECT not_before FROM bound))
       AND (c.claimed_until IS NULL OR c.claimed_until <= now()
            OR c.claimed_by = CAST(:holder AS text))
    RETURNING 1
)
SELECT (SELECT count(*) FROM claim) AS claimed,
       e.output, e.checked_at,
       extract(epoch FROM clock_timestamp() - e.checked_at)::float8 AS age_seconds
  FROM (SELECT 1) AS one LEFT JOIN existing AS e ON true
"""
)


async def lookup_or_claim(
    session: AsyncSession,
    key: str,
    *,
    email: str,
    ttl: float,
    claim_for: float,
    fresh_since: datetime | None = None,
    holder: str | None = None,
) -> Lookup:
    """A result younger than `ttl` seconds and checked at or after `fresh_since` (if given),
    or the key's claim for `claim_for` seconds, or neither (see `Lookup`). `holder`: who
    claims (a bulk row); a live claim of the same holder is taken back."""
    await _not_durable(session)
    row = (
        await session.execute(
            _LOOKUP_OR_CLAIM,
            {
                "key": key,
                "email": email,
                "ttl": ttl,
                "claim_for": claim_for,
                "fresh_since": fresh_since,
                "holder": holder,
            },
        )
    ).one()
    if row.output is not None:
        output = row.output if isinstance(row.output, dict) else orjson.loads(row.output)
        return Lookup(
            cached=Cached(
                output=output, checked_at=row.checked_at, age_seconds=max(0.0, row.age_seconds)
            )
        )
    return Lookup(claimed=bool(row.claimed))


_STORE = text(
    """
INSERT INTO result_cache AS c (key, email, output, verdict, checked_at, claimed_until)
VALUES (:key, :email, CAST(:output AS json), :verdict, now(), NULL)
ON CONFLICT (key) DO UPDATE SET
    email = excluded.email, output = excluded.output, verdict = excluded.verdict,
    checked_at = excluded.checked_at, claimed_until = NULL, claimed_by = NULL
"""
)


async def store(
    session: AsyncSession, key: str, *, email: str, output: dict[str, Any], verdict: str
) -> None:
    """Keep `output` as the key's result, checked now, and end any claim on the key: whoever
    waited for it reads this result."""
    await _not_durable(session)
    await session.execute(
        _STORE,
        {
            "key": key,
            "email": email,
            "output": orjson.dumps(output).decode(),
            "verdict": verdict,
        },
    )


_RELEASE = text(
    """
WITH claim_only AS (
    DELETE FROM result_cache WHERE key = :key AND output IS NULL RETURNING 1
)
UPDATE result_cache SET claimed_until = NULL, claimed_by = NULL
 WHERE key = :key AND output IS NOT NULL
"""
)


async def release(session: AsyncSession, key: str) -> None:
    """End this caller's claim without a result (it was not cacheable, or the probe failed):
    whoever waits probes for itself. A row that held only the claim goes."""
    await _not_durable(session)
    await session.execute(_RELEASE, {"key": key})


_PRUNE = text(
    """
DELETE FROM result_cache
 WHERE (checked_at IS NULL OR checked_at < now() - make_interval(secs => :ttl))
   AND (claimed_until IS NULL OR claimed_until < now())
"""
)


async def prune(session: AsyncSession, *, ttl: float) -> int:
    """Delete results older than `ttl` seconds (all of them for 0) and expired claims;
    returns how many rows went."""
    deleted = await session.execute(_PRUNE, {"ttl": ttl})
    return int(getattr(deleted, "rowcount", 0) or 0)


async def table_exists(session: AsyncSession) -> bool:
    """Whether this database has the cache's table (it may not be migrated yet)."""
    found = await session.scalar(text("SELECT to_regclass('result_cache') IS NOT NULL"))
    return bool(found)
