"""The worker process: settings → engine, database and queue → a procrastinate worker.

Everything is built here, at start, once per process (never at import), and closed on exit.
"""

from __future__ import annotations

import asyncio
import logging

from app import queue
from app.db.session import libpq_url, make_engine, make_sessionmaker
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
    app = queue.make_app(libpq_url(settings.database_url), pool_size=min(concurrency, 10) + 2)
    tasks.register(app)
    periodic.register(app, settings)
    log.info("worker %s starting: concurrency %d", name or "", concurrency)
    try:
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
                writer=ResultWriter(sessions),
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
    finally:
        await db_engine.dispose()
