"""Per-MX session limits shared by every process, held as PostgreSQL advisory locks.

Slot `s` of MX group `key` is the session-level advisory lock (hashtext('mxprobe:' || key), s),
taken on one dedicated connection per process. Why advisory locks rather than a lease table:
a process that dies (even by kill -9) loses its connection and PostgreSQL drops its locks at
once, so no slot ever leaks and nothing needs expiring; taking or giving back a slot is one
statement that touches no table, and it happens once per SMTP session, not per address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import asyncpg  # type: ignore[import-untyped]

from app.engine.probes.limits import Lease

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
_GIVE_BACK = "SELECT pg_advisory_unlock(hashtext('mxprobe:' || $1::text), $2::int)"
_GLOBAL = "*"


class PostgresMxLimiter:
    """`MxLimiter` whose budgets hold across all worker processes and hosts."""

    def __init__(
        self,
        connection: asyncpg.Connection,
        *,
        per_mx: int,
        total: int,
        overrides: Mapping[str, int] | None = None,
    ) -> None:
        self._conn = connection
        self._per_mx = per_mx
        self._total = total
        self._overrides = dict(overrides or {})
        self._lock = asyncio.Lock()  # one connection: one statement at a time
        # Advisory locks are re-entrant within a session, so skip the slots we hold already.
        self._held: dict[str, set[int]] = {}

    @classmethod
    async def connect(
        cls, dsn: str, *, per_mx: int, total: int, overrides: Mapping[str, int] | None = None
    ) -> PostgresMxLimiter:
        connection = await asyncpg.connect(dsn)
        return cls(connection, per_mx=per_mx, total=total, overrides=overrides)

    def limit(self, key: str) -> int:
        return self._overrides.get(key, self._per_mx)

    async def try_acquire(self, key: str) -> Lease | None:
        async with self._lock:
            overall = await self._take(_GLOBAL, self._total)
            if overall is None:
                return None
            slot = await self._take(key, self.limit(key))
            if slot is None:
                await self._give_back(_GLOBAL, overall)
                return None
            return Lease(key, slot * 1_000_000 + overall)

    async def _take(self, key: str, limit: int) -> int | None:
        held = self._held.setdefault(key, set())
        slot = await self._conn.fetchval(_TAKE, key, limit, list(held))
        if slot is None:
            return None
        held.add(int(slot))
        return int(slot)

    async def _give_back(self, key: str, slot: int) -> None:
        self._held.get(key, set()).discard(slot)
        if not self._conn.is_closed():
            await self._conn.fetchval(_GIVE_BACK, key, slot)

    async def release(self, lease: Lease) -> None:
        slot, overall = divmod(lease.token, 1_000_000)
        async with self._lock:
            # (On a closed connection the server has already dropped every lock it held.)
            await self._give_back(lease.key, slot)
            await self._give_back(_GLOBAL, overall)

    async def close(self) -> None:
        await self._conn.close()
