"""Builds the engine the way each process needs it, from the settings.

The API and the workers share one per-MX budget through PostgreSQL (`PostgresMxLimiter`),
and one send schedule per rate-limited MX group (`PostgresRateLimiter`, connected only when
some group has a rate); `mxprobe check`, which needs no database, keeps both in-process.
Likewise what each process sees of each MX group (`MxBehaviour`: latency, timeouts, 421s,
tarpits) is exchanged through PostgreSQL every MXPROBE_BEHAVIOUR_SYNC_INTERVAL seconds, so
every process fits its timeouts to what all of them saw.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.db.mx_behaviour import PostgresBehaviourStore
from app.db.mx_limits import PostgresMxLimiter
from app.db.mx_rates import PostgresRateLimiter
from app.db.session import libpq_url
from app.engine import (
    LocalMxLimiter,
    LocalRateLimiter,
    MxBehaviour,
    MxLimiter,
    Observer,
    ProbeOpener,
    RateLimiter,
    Resolver,
    SessionPool,
    Verifier,
)
from app.engine.observer import NO_OBSERVER
from app.engine.probes.behaviour import sync_every
from app.engine.probes.transcript import Transcript
from app.settings import Settings


@asynccontextmanager
async def open_verifier(
    settings: Settings,
    *,
    shared_limits: bool = True,
    raise_no_slot: bool = False,
    max_waiters: int | None = None,
    greylist_inline_retry: float | None = None,
    observer: Observer = NO_OBSERVER,
    transcript: Transcript | None = None,
) -> AsyncIterator[Verifier]:
    """A Verifier with its resolver, session pool and limiters; all closed on exit.
    `observer`: told what the resolver, the pool and the verifier see (`app.metrics`);
    `transcript`: where every SMTP session writes its conversation (`mxprobe check`)."""
    limiter: MxLimiter
    postgres: PostgresMxLimiter | None = None
    default_rate, rate_overrides = settings.default_rate(), settings.rate_limits()
    rates: RateLimiter = LocalRateLimiter(default=default_rate, overrides=rate_overrides)
    postgres_rates: PostgresRateLimiter | None = None
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
        if default_rate is not None or rate_overrides:
            postgres_rates = await PostgresRateLimiter.connect(
                libpq_url(settings.database_url), default=default_rate, overrides=rate_overrides
            )
            rates = postgres_rates
    else:
        limiter = LocalMxLimiter(
            per_mx=settings.mx_concurrency,
            total=settings.global_concurrency,
            overrides=settings.session_limits(),
        )
    config = settings.probe_config()
    if greylist_inline_retry is not None:
        config = dataclasses.replace(config, greylist_inline_retry=greylist_inline_retry)
    resolver = Resolver(settings.dns_config(), observer=observer)
    book = MxBehaviour()
    pool = SessionPool(
        opener=ProbeOpener(config, book, transcript=transcript),
        limiter=limiter,
        idle_timeout=config.session_idle_timeout,
        slot_wait=config.slot_wait,
        max_waiters=max_waiters,
        rates=rates,
        behaviour=book,
        busy_cooldown=config.busy_cooldown,
        observer=observer,
    )
    verifier = Verifier(
        config, resolver=resolver, pool=pool, raise_no_slot=raise_no_slot, observer=observer
    )
    try:
        async with sharing_behaviour(settings, book, shared=shared_limits):
            yield verifier
    finally:
        await verifier.close()
        await resolver.close()
        if postgres is not None:
            await postgres.close()
        if postgres_rates is not None:
            await postgres_rates.close()


@asynccontextmanager
async def sharing_behaviour(
    settings: Settings, book: MxBehaviour, *, shared: bool
) -> AsyncIterator[MxBehaviour]:
    """While open, `book` is synced with every process's through PostgreSQL in the background,
    and once more on exit; when not `shared`, it stays this process's alone."""
    if not shared:
        yield book
        return
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set")
    store = await PostgresBehaviourStore.connect(libpq_url(settings.database_url))
    stop = asyncio.Event()
    syncing = asyncio.create_task(
        sync_every(book, store, interval=settings.behaviour_sync_interval, stop=stop),
        name="mxprobe-behaviour-sync",
    )
    try:
        yield book
    finally:
        stop.set()
        try:
            await syncing
        finally:
            await store.close()
