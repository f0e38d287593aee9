"""The worker process: settings → engine, database and queue → a procrastinate worker.

Everything is built here, at start, once per process (never at import), and closed on exit.

A database outage does not end the worker: its queries wait for the server to come back (see
`app.queue.make_app`, `ride_out_outages`), results wait in the writer, and the MX limiters
reconnect. Should anything still give up on the database (a worker started while it is down,
say), the worker logs it, pauses (doubling, jittered, capped) and starts again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from app import queue
from app.db.session import libpq_url, make_engine, make_sessionmaker
from app.outage import backoff, is_outage
from app.settings import Settings
from app.verifiers import open_verifier
from worker import periodic, tasks
from worker.writer import ResultWriter

log = logging.getLogger(__name__)


def run(settings: Settings, *, concurrency: int | None = None) -> None:
    """Run a worker until SIGINT or SIGTERM (then finish running tasks, up to
    `worker_shutdown_timeout`, and stop). Blocking."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("procrastinate").setLevel(logging.WARNING)  # two lines per address
    asyncio.run(run_async(settings, concurrency=concurrency))


async def run_async(
    settings: Settings,
    *,
    concurrency: int | None = None,
    install_signal_handlers: bool = True,
    name: str | None = None,
) -> None:
    """The worker as a coroutine (tests run it as a task and cancel it to stop it)."""
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set")
    concurrency = concurrency or settings.worker_concurrency
    db_engine = make_engine(settings.database_url, pool_size=min(concurrency, 20), pre_ping=False)
    cap = settings.database_retry_max_delay
    log.info("worker %s starting: concurrency %d", name or "", concurrency)
    try:
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                await _run_once(
                    settings,
                    db_engine,
                    concurrency=concurrency,
                    install_signal_handlers=install_signal_handlers,
                    name=name,
                )
                return
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if time.monotonic() - started > 2 * cap:
                    attempt = 0  # it ran a while: a new outage
                delay = backoff(attempt, cap=cap)
                attempt += 1
                log.warning(
                    "database unavailable (%s: %s); starting again in %.1f s",
                    type(exc).__name__,
                    exc.__cause__ or exc,
                    delay,
                )
                await asyncio.sleep(delay)
    finally:
        await db_engine.dispose()


async def _run_once(
    settings: Settings,
    db_engine: AsyncEngine,
    *,
    concurrency: int,
    install_signal_handlers: bool,
    name: str | None,
) -> None:
    assert settings.database_url
    app = queue.make_app(
        libpq_url(settings.database_url),
        pool_size=min(concurrency, 10) + 2,
        ride_out_outages=settings.database_retry_max_delay,
    )
    tasks.register(app)
    periodic.register(app, settings)
    async with (
        open_verifier(
            settings,
            # No slot for a busy MX: the task is re-deferred rather than held.
            raise_no_slot=True,
            max_waiters=2 * settings.mx_concurrency,
            # Never wait for a greylisting server inside a task: the queue retries a 4xx.
            greylist_inline_retry=0.0,
        ) as verifier,
        app.open_async(),
    ):
        sessions = make_sessionmaker(db_engine)
        deps = tasks.Deps(
            settings=settings,
            verifier=verifier,
            sessions=sessions,
            writer=ResultWriter(sessions, outage_max_delay=settings.database_retry_max_delay),
        )
        await app.run_worker_async(
            queues=[queue.VERIFY_QUEUE, queue.MAINTENANCE_QUEUE],
            name=name or "worker",
            concurrency=concurrency,
            delete_jobs="successful",
            additional_context={"deps": deps},
            fetch_job_polling_interval=settings.worker_poll_interval,
            abort_job_polling_interval=settings.worker_poll_interval,
            update_heartbeat_interval=settings.worker_heartbeat_interval,
            stalled_worker_timeout=settings.worker_stalled_timeout,
            shutdown_graceful_timeout=settings.worker_shutdown_timeout,
            install_signal_handlers=install_signal_handlers,
        )
