"""How many probes may press on one MX (or one provider) at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol


class MxLimiter(Protocol):
    """A slot to talk to the MX group `key` (see `rules.providers.limit_key`)."""

    def slot(self, key: str) -> contextlib.AbstractAsyncContextManager[None]: ...


class LocalMxLimiter:
    """In-process limits: per key and global concurrency. For one process (CLI, API checks)."""

    def __init__(self, *, per_mx: int, total: int) -> None:
        self._per_mx = per_mx
        self._total = asyncio.Semaphore(total)
        self._by_key: dict[str, asyncio.Semaphore] = {}

    @contextlib.asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        semaphore = self._by_key.setdefault(key, asyncio.Semaphore(self._per_mx))
        async with self._total, semaphore:
            yield
