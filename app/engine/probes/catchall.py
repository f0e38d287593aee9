"""Catch-all detection state: one random-recipient probe per domain, remembered for a TTL."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Protocol

from cachetools import TTLCache


def probe_local_part(domain: str, *, secret: str) -> str:
    """The random local part probed at `domain`: unguessable without `secret`, yet the same in
    every worker, so a greylisted catch-all probe is retried with the very same recipient
    (greylisting is keyed by the client, sender, recipient triplet)."""
    digest = hmac.new(secret.encode(), domain.lower().encode(), hashlib.sha256).hexdigest()
    return f"mxp{digest[:21]}"


class CatchAllStore(Protocol):
    """Where a domain's catch-all verdict lives; in-process here, shared ones elsewhere."""

    async def get(self, domain: str) -> bool | None: ...

    async def put(self, domain: str, is_catch_all: bool) -> None: ...


class MemoryCatchAllStore:
    def __init__(self, *, ttl: float, maxsize: int = 100_000) -> None:
        self._cache: TTLCache[str, bool] = TTLCache(maxsize=maxsize, ttl=ttl, timer=time.monotonic)

    async def get(self, domain: str) -> bool | None:
        return self._cache.get(domain.lower())

    async def put(self, domain: str, is_catch_all: bool) -> None:
        self._cache[domain.lower()] = is_catch_all
