"""The worker process: settings → engine, database and queue → a procrastinate worker.

Everything is built here, at start, once per process (never at import), and closed on exit.

A database outage does not end the worker: its queries wait for the server to come back (see
`app.queue.make_app`, `ride_out_outages`), results wait in the writer, and the MX limiters
reconnect. Should anything still give up on the database (a worker started while it is down,
say), the worker logs it, pauses (doubling, jittered, capped) and starts again.

SIGTERM or SIGINT stops it: no new task is taken, running tasks get `worker_shutdown_timeout`
to finish, and the process exits 0. That holds while the database is down too: waits for it end
with the grace period (`app.outage.Stopping`), results not stored by then are not lost (their
tasks, left `doing`, are retried as stalled by another worker once the database is back), and
the worker exits rather than wait for the database forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.config
import signal
import time
from collections.abc import Iterator

from sqlalchemy.ext.asyncio import AsyncEngine

from app import logs, metrics, queue
from app.db.session import libpq_url, make_engine, make_sessionmaker
from app.outage import Stopping, backoff, is_outage
from app.settings import Settings
from app.verifiers import open_verifier
from worker import periodic, tasks
from worker.writer import ResultWriter

log = logging.getLogger(__name__)


def run(settings: Settings, *, concurrency: int | None = None) -> None:
    """Run a worker until SIGINT or SIGTERM (then finish running tasks, up to
    `worker_shutdown_timeout`, and stop). Blocking."""
    logging.config.dictConfig(logs.config(log_format=settings.log_format, level=settings.log_level))
    # MXPROBE_WORKER_METRICS_PORT (`--metrics-port`): /metrics served from a thread of its own
    with metrics.serving(host=settings.worker_metrics_host, port=settings.worker_metrics_port):
        asyncio.run(run_async(settings, concurrency=concurrency))


async def run_async(
    settings: Settings,
    *,
    concurrency: int | None = None,
    install_signal_handlers: bool = True,
    name: str | None = None,
) -> None:
    """The worker as a coroutine: until SIGINT or SIGTERM (`install_signal_handlers`), or until
    cancelled (tests run it as a task and cancel it to stop it)."""
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set")
    concurrency = concurrency or settings.worker_concurrency
    db_engine = make_engine(settings.database_url, pool_size=min(concurrency, 20), pre_ping=False)
    stopping = Stopping()
    log.info("worker %s starting: concurrency %d", name or "", concurrency)
    try:
        with (
            _stop_on_signals(stopping, grace=settings.worker_shutdown_timeout)
            if install_signal_handlers
            else contextlib.nullcontext()
        ):
            await _keep_running(
                settings, db_engine, stopping=stopping, concurrency=concurrency, name=name
            )
    except asyncio.CancelledError:
        if not stopping.requested:
            raise
        _uncancel()  # our own cancellation, the way to stop procrastinate's worker
    except Exception as exc:
        if not (stopping.requested and is_outage(exc)):
            raise
        log.warning(
            "stopped with the database unavailable: tasks this worker still held are retried "
            "as stalled by another worker once it is back (%s)",
            exc,
        )
    finally:
        await db_engine.dispose()
    log.info("worker %s stopped", name or "")


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


@contextlib.contextmanager
def _stop_on_signals(stopping: Stopping, *, grace: float) -> Iterator[None]:
    """SIGTERM and SIGINT stop the worker (the task running this): the waits for the database
    end `grace` seconds from now, and the task is cancelled, which is how procrastinate's
    worker is stopped (it takes no new task and gives running ones `worker_shutdown_timeout`).
    A second signal changes nothing: Ctrl-C on `mxprobe serve` reaches a worker twice (from the
    terminal, and from `serve` passing it on)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def on_signal(signum: signal.Signals) -> None:
        if stopping.requested:
            log.info("%s: already stopping", signum.name)
            return
        log.info("%s: stopping; running tasks get up to %g s", signum.name, grace)
        stopping.request(grace=grace)
        task.cancel()

    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def _keep_running(
    settings: Settings,
    db_engine: AsyncEngine,
    *,
    stopping: Stopping,
    concurrency: int,
    name: str | None,
) -> None:
    """`_run_once`, started again (after a pause) whenever it gives up on the database, or at
    once when its registration was pruned, until it returns or a stop is requested."""
    cap = settings.database_retry_max_delay
    attempt = 0
    while True:
        started = time.monotonic()
        try:
            await _run_once(
                settings, db_engine, stopping=stopping, concurrency=concurrency, name=name
            )
            return
        except queue.DeclaredStalled as exc:
            if stopping.requested:
                raise
            log.warning("%s as stalled by another worker: registering again", exc)
            continue
        except Exception as exc:
            if stopping.requested or not is_outage(exc):
                raise
            if time.monotonic() - started > 2 * cap:
                attempt = 0  # it ran a while: a new outage
            delay = backoff(attempt, cap=cap)
            log.log(
                logging.WARNING if attempt == 0 else logging.DEBUG,  # one line per outage
                "database unavailable (%s: %s); starting again in %.1f s, and until it is back",
                type(exc).__name__,
                exc.__cause__ or exc,
                delay,
            )
            attempt += 1
            await asyncio.sleep(delay)


async def _run_once(
    settings: Settings,
    db_engine: AsyncEngine,
    *,
    stopping: Stopping,
    concurrency: int,
    name: str | None,
) -> None:
    assert settings.database_url
    app = queue.make_app(
        libpq_url(settings.database_url),
        pool_size=min(concurrency, 10) + 2,
        ride_out_outages=settings.database_retry_max_delay,
        stopping=stopping,
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
            observer=metrics.OBSERVER,
        ) as verifier,
        app.open_async(),
    ):
        sessions = make_sessionmaker(db_engine)
        deps = tasks.Deps(
            settings=settings,
            verifier=verifier,
            sessions=sessions,
            writer=ResultWriter(
                sessions,
                outage_max_delay=settings.database_retry_max_delay,
                stopping=stopping,
            ),
        )
        await app.run_worker_async(
            queues=[
                queue.VERIFY_QUEUE,
                queue.IMPORT_QUEUE,
                queue.MAINTENANCE_QUEUE,
                queue.WEBHOOK_QUEUE,
            ],
            name=name or "worker",
            concurrency=concurrency,
            delete_jobs="successful",
            additional_context={"deps": deps},
            fetch_job_polling_interval=settings.worker_poll_interval,
            abort_job_polling_interval=settings.worker_poll_interval,
            update_heartbeat_interval=settings.worker_heartbeat_interval,
            stalled_worker_timeout=settings.worker_stalled_timeout,
            shutdown_graceful_timeout=settings.worker_shutdown_timeout,
            install_signal_handlers=False,  # ours: see _stop_on_signals
        )
