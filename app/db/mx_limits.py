"""Per-MX session limits shared by every process, held as PostgreSQL advisory locks.

Slot `s` of MX group `key` is the session-level advisory lock (hashtext('mxprobe:' || key), s),
taken on one dedicated connection per process. Why advisory locks rather than a lease table:
a process that dies (even by kill -9) loses its connection and PostgreSQL drops its locks at
once, so no slot ever leaks and nothing needs expiring; taking or giving back a slot is one
statement that touches no table, and it happens once per SMTP session, not per address.

A group's budget is learnt (see `app.engine.probes.limits`): one row per group in
`mx_budgets`, read by the statement that takes a slot, which also counts the group's slots
held by every process (in `pg_locks`). No row means one session; `grow` adds one, up to the
limit; `refused` sets it to the sessions open when a 421 came, until `capped_until`. A
refused `try_acquire` stamps `wanted_at`, which sessions idling in the group read (`wanted`)
to give their slot back rather than sit on it. `max_errors`: the unknown recipients per
session after which the group's servers hung up, less one, as learnt by any process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import asyncpg  # type: ignore[import-untyped]

from app.db.unavailable import SharedStore
from app.engine import errors
from app.engine.probes.limits import WANTED_FOR, Lease

log = logging.getLogger(__name__)

# The slots we hold are filtered out in a fenced subquery (OFFSET 0) so that PostgreSQL cannot
# evaluate pg_try_advisory_lock on them first: advisory locks stack within a session, and a
# lock taken on a row the outer filter then drops would never be given back.
_TAKE = """
SELECT s FROM (
    SELECT s FROM generate_series(0, $2::int - 1) AS s WHERE s <> ALL($3::int[]) OFFSET 0
) AS free
WHERE pg_try_advisory_lock(hashtext('mxprobe:' || $1::text), s)
LIMIT 1
"""
# A group's slot: only below the learnt budget; and while a 421's cap holds, only while fewer
# than the budget are held (sessions opened before the cap may hold higher slots). pg_locks is
# read only then: it is the costly part.
_TAKE_GROUP = """
WITH budget AS (
    SELECT least($2::int, coalesce(max(budget), 1)) AS n,
           coalesce(bool_or(capped_until > now()), false) AS capped
    FROM mx_budgets WHERE key = $1
)
SELECT s FROM (
    SELECT s FROM generate_series(0, $2::int - 1) AS s, budget
    WHERE s <> ALL($3::int[]) AND s < budget.n
      AND CASE WHEN budget.capped THEN
            (SELECT count(*) FROM pg_locks
             WHERE locktype = 'advisory' AND objsubid = 2 AND granted
               AND classid = hashtext('mxprobe:' || $1::text)::oid) < budget.n
          ELSE true END
    OFFSET 0
) AS free
WHERE pg_try_advisory_lock(hashtext('mxprobe:' || $1::text), s)
LIMIT 1
"""
_GROW = """
INSERT INTO mx_budgets AS b (key, budget, updated_at) VALUES ($1, least(2, $2::int), now())
ON CONFLICT (key) DO UPDATE SET budget = least(b.budget + 1, $2::int), updated_at = now()
WHERE b.capped_until IS NULL OR b.capped_until <= now()
"""
# The refused session still holds its slot: the others are what the server took.
_REFUSED = """
INSERT INTO mx_budgets AS b (key, budget, capped_until, updated_at)
SELECT $1, greatest(1, count(*)::int - 1), now() + make_interval(secs => $2), now()
FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 2 AND granted
  AND classid = hashtext('mxprobe:' || $1::text)::oid
ON CONFLICT (key) DO UPDATE
SET budget = excluded.budget, capped_until = excluded.capped_until, updated_at = now()
"""
# Somebody could not get a slot of the group: sessions idling in it give theirs back.
_WANT = """
INSERT INTO mx_budgets AS b (key, budget, wanted_at, updated_at) VALUES ($1, 1, now(), now())
ON CONFLICT (key) DO UPDATE SET wanted_at = now()
"""
_WANTED = "SELECT key FROM mx_budgets WHERE wanted_at > now() - make_interval(secs => $1)"
_LEARN_ERRORS = """
INSERT INTO mx_budgets AS b (key, budget, max_errors, updated_at) VALUES ($1, 1, $2, now())
ON CONFLICT (key) DO UPDATE
SET max_errors = least(coalesce(b.max_errors, $2::int), $2::int), updated_at = now()
"""
_ERRORS = "SELECT max_errors FROM mx_budgets WHERE key = $1"
_GIVE_BACK = "SELECT pg_advisory_unlock(hashtext('mxprobe:' || $1::text), $2::int)"
_GLOBAL = "*"
# After a reconnection: the slot a lease still in use held on the lost session.
_RETAKE = "SELECT pg_try_advisory_lock(hashtext('mxprobe:' || $1::text), $2::int)"


class PostgresMxLimiter(SharedStore):
    """`MxLimiter` whose budgets hold across all worker processes and hosts.

    When the database restarts, the session and every lock it held are gone. On reconnecting
    (at once, see `OwnConnection`), the limiter takes again the slots of the leases still in
    use (SMTP sessions go on through an outage), and takes no new slot for `REOPEN_GRACE`
    seconds, while the other processes take back theirs. A slot somebody else holds by then is
    dropped, with a warning. A lease of the lost session gives nothing back, and a release
    during an outage is not an error; nor is `wanted` (nobody). Every other call made while
    the database is unreachable raises `StoreUnavailable` (from the driver's error), which the
    session pool waits out."""

    REOPEN_GRACE = 3.0
    STORE = "MX limits"

    def __init__(
        self,
        connection: asyncpg.Connection,
        *,
        per_mx: int,
        total: int,
        overrides: Mapping[str, int] | None = None,
        dsn: str | None = None,
    ) -> None:
        super().__init__(connection, dsn=dsn)
        self._per_mx = per_mx
        self._total = total
        self._overrides = dict(overrides or {})
        # Advisory locks are re-entrant within a session, so skip the slots we hold already.
        self._held: dict[str, set[int]] = {}
        self._leases: dict[int, Lease] = {}  # id → lease: those the current session holds
        self._marked: dict[str, float] = {}  # when we last marked a group wanted
        self._grace_until = 0.0  # no new slot before (after a reconnection)

    @classmethod
    async def connect(
        cls, dsn: str, *, per_mx: int, total: int, overrides: Mapping[str, int] | None = None
    ) -> PostgresMxLimiter:
        connection = await asyncpg.connect(dsn)
        return cls(connection, per_mx=per_mx, total=total, overrides=overrides, dsn=dsn)

    def limit(self, key: str) -> int:
        return self._overrides.get(key, self._per_mx)

    async def _reconnected(self, connection: asyncpg.Connection) -> None:
        self._grace_until = time.monotonic() + self.REOPEN_GRACE
        self._held = {}
        for ident, lease in list(self._leases.items()):
            slot, overall = divmod(lease.token, 1_000_000)
            locks = ((lease.key, slot), (_GLOBAL, overall))
            taken = [(k, s) for k, s in locks if await connection.fetchval(_RETAKE, k, s)]
            for key, held in taken:
                self._held.setdefault(key, set()).add(held)
            if len(taken) < len(locks):
                log.warning("slot %s of %s was taken elsewhere during an outage", slot, lease.key)
                for key, held in taken:
                    await self._give_back(connection, key, held)
                del self._leases[ident]

    async def try_acquire(self, key: str, *, waiting: bool = True) -> Lease | None:
        async with self._shared() as conn:
            if time.monotonic() < self._grace_until:
                return None  # the other processes are still taking back their slots
            overall = await self._take(conn, _GLOBAL, self._total)
            if overall is None:
                return None
            slot = await self._take(conn, key, self.limit(key), _TAKE_GROUP)
            if slot is None:
                await self._give_back(conn, _GLOBAL, overall)
                if waiting:
                    await self._mark_wanted(conn, key)
                return None
            lease = Lease(key, slot * 1_000_000 + overall)
            self._leases[id(lease)] = lease
            return lease

    async def grow(self, key: str) -> None:
        async with self._shared() as conn:
            await conn.execute(_GROW, key, self.limit(key))

    async def error_limit(self, key: str) -> int | None:
        async with self._shared() as conn:
            limit = await conn.fetchval(_ERRORS, key)
        return None if limit is None else int(limit)

    async def learn_error_limit(self, key: str, limit: int) -> None:
        async with self._shared() as conn:
            await conn.execute(_LEARN_ERRORS, key, limit)

    async def wanted(self) -> set[str]:
        """(Nobody, while the database is unreachable.)"""
        try:
            async with self._shared() as conn:
                return {row["key"] for row in await conn.fetch(_WANTED, WANTED_FOR)}
        except errors.StoreUnavailable:
            return set()

    async def _mark_wanted(self, conn: asyncpg.Connection, key: str) -> None:
        """At most twice per `WANTED_FOR`, however often we poll for a slot."""
        now = time.monotonic()
        if now - self._marked.get(key, 0.0) >= WANTED_FOR / 2:
            self._marked[key] = now
            if len(self._marked) > 4096:
                self._marked = {k: t for k, t in self._marked.items() if now - t < WANTED_FOR}
            await conn.execute(_WANT, key)

    async def refused(self, key: str, *, seconds: float) -> None:
        async with self._shared() as conn:
            await conn.execute(_REFUSED, key, float(seconds))

    async def _take(
        self, conn: asyncpg.Connection, key: str, limit: int, statement: str = _TAKE
    ) -> int | None:
        held = self._held.setdefault(key, set())
        slot = await conn.fetchval(statement, key, limit, list(held))
        if slot is None:
            return None
        held.add(int(slot))
        return int(slot)

    async def _give_back(self, conn: asyncpg.Connection, key: str, slot: int) -> None:
        self._held.get(key, set()).discard(slot)
        if not conn.is_closed():
            await conn.fetchval(_GIVE_BACK, key, slot)

    async def release(self, lease: Lease) -> None:
        """(On a lost connection the server has already dropped every lock it held.)"""
        if self._leases.get(id(lease)) is not lease:
            return  # a lease of a lost session
        slot, overall = divmod(lease.token, 1_000_000)
        try:
            async with self._shared() as conn:
                if self._leases.pop(id(lease), None) is lease:
                    await self._give_back(conn, lease.key, slot)
                    await self._give_back(conn, _GLOBAL, overall)
        except errors.StoreUnavailable:
            self._leases.pop(id(lease), None)  # its connection, and the slot with it, is gone
