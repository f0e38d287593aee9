"""Builds the engine the way each process needs it, from the settings.

The API and the workers share one per-MX budget through PostgreSQL (`PostgresMxLimiter`);
`mxprobe check`, which needs no database, keeps its budget in-process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.db.mx_limits import PostgresMxLimiter
from app.db.session import libpq_url
from app.engine import LocalMxLimiter, MxLimiter, Resolver, SessionPool, Verifier
from app.settings import Settings


@asynccontextmanager
async def open_verifier(
    settings: Settings,
    *,
    shared_limits: bool = True,
    raise_no_slot: bool = False,
    max_waiters: int | None = None,
    greylist_inline_retry: float | None = None,
) -> AsyncIterator[Verifier]:
    """A Verifier with its resolver, session pool and limiter; all closed on exit."""
    limiter: MxLimiter
    postgres: PostgresMxLimiter | None = None
    if shared_limits:
        if not settings.database_url:
            raise RuntimeError("DATABASE_URL is not set")
        postgres = await PostgresMxLimiter.connect(
            libpq_url(settings.database_url),
            per_mx=settings.mx_concurrency,
            total=settings.global_concurrency,
            overrides=settings.session_limits(),
        )
        limiter = postgres
    else:
        limiter = LocalMxLimiter(
            per_mx=settings.mx_concurrency,
            total=settings.global_concurrency,
            overrides=settings.session_limits(),
        )
    config = settings.probe_config()
    if greylist_inline_retry is not None:
        config = dataclasses.replace(config, greylist_inline_retry=greylist_inline_retry)
    resolver = Resolver(settings.dns_config())
    pool = SessionPool(
        limiter=limiter,
        idle_timeout=config.session_idle_timeout,
        slot_wait=config.slot_wait,
        max_waiters=max_waiters,
    )
    verifier = Verifier(config, resolver=resolver, pool=pool, raise_no_slot=raise_no_slot)
    try:
        yield verifier
    finally:
        await verifier.close()
        await resolver.close()
        if postgres is not None:
            await postgres.close()
