"""The queue contract: procrastinate's app, our task and queue names, and the two procrastinate
SQL calls the API makes on its own SQLAlchemy connection (batch defer, cancel).

The API never imports the worker: it enqueues by task name. `worker.tasks` registers the task
bodies under these names. procrastinate joins a caller's transaction only on a psycopg
connection, and the API's connection is asyncpg (SQLAlchemy); so to create a bulk job and all
its tasks in ONE transaction, `defer_verifications` calls procrastinate's own defer function,
`procrastinate_defer_jobs_v1` (what its `defer_jobs` query in `sql/queries.sql` calls), on that
connection, and `cancel_pending` calls its `procrastinate_cancel_job_v1` the same way. A job
therefore never exists without its tasks, nor tasks without their job.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, LiteralString, TypeVar

import psycopg
import psycopg_pool
from procrastinate import App, PsycopgConnector, sql
from procrastinate.connector import Notify
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.outage import Stopping, backoff, is_outage, until_back

log = logging.getLogger(__name__)
T = TypeVar("T")

NAMESPACE = "mxprobe"
VERIFY_TASK = f"{NAMESPACE}:verify_address"
"""Verifies one input row. Arguments: job_id, position, email."""
VERIFY_QUEUE = "verify"
IMPORT_TASK = f"{NAMESPACE}:import_list"
"""Reads a bulk job's list from its URL into rows (`app.imports.import_url`). Argument: job_id."""
IMPORT_QUEUE = "import"
IMPORT_PRIORITY = 50
"""Workers take tasks by priority, then age, whatever their queue: an import must not wait
behind every verification already queued (the stalled-task retry has 100)."""
MAINTENANCE_QUEUE = "maintenance"
"""Periodic tasks: retrying stalled jobs, pruning. A queue of their own, but workers take
tasks by priority then age across their queues: the stalled-task retry has a priority of its
own (worker.periodic) so that a long list does not delay it."""

DEFER_CHUNK = 25_000
"""Rows per defer statement: one array per statement keeps each under ~10 MB of arguments."""


def verify_priority(position: int) -> int:
    """The priority of the task of a job's row at `position`: 0 for the first row, -1 for the
    next two, -2 for the four after, ... (minus the row number's binary order of magnitude).

    Workers take tasks by priority, then age. So jobs share the workers rather than queue
    behind each other: a 20-row job submitted while a million-row job is at row 500,000 has
    all its rows verified next (priorities 0 to -4 against -18), and every job's first rows
    come early. Within a job, rows still run in order. `POSITION_PRIORITY` is the same in SQL."""
    return 1 - (position + 1).bit_length()


POSITION_PRIORITY = "(1 - length(ltrim(CAST(CAST({} + 1 AS bigint) AS bit(64))::text, '0')))"
"""`verify_priority` of a SQL expression (`.format(expression)`), in integer arithmetic."""

LOWEST_PRIORITY = -1000
"""Below every row's `verify_priority` (-62 at the lowest, for a bigint position)."""

_ROW_POSITION = "CAST(:first AS bigint) + rows.ordinality - 1"

DEFER_VERIFICATIONS = text(
    f"""
    SELECT cardinality(procrastinate_defer_jobs_v1(ARRAY(
        SELECT ROW(
                   CAST(:queue AS varchar),
                   CAST(:task AS varchar),
                   {POSITION_PRIORITY.format(_ROW_POSITION)},
                   NULL,
                   NULL,
                   jsonb_build_object(
                       'job_id', CAST(:job_id AS bigint),
                       'position', {_ROW_POSITION},
                       'email', rows.email
                   ),
                   NULL
               )::procrastinate_job_to_defer_v1
          FROM unnest(CAST(:emails AS text[])) WITH ORDINALITY AS rows(email, ordinality)
         ORDER BY rows.ordinality
    )))
    """
)
"""One procrastinate job per address, built server-side from one text[] parameter, deferred
by procrastinate's own function (so its triggers, events and notifications all run), at its
row's `verify_priority`."""

CANCEL_PENDING = text(
    """
    SELECT count(procrastinate_cancel_job_v1(jobs.id, false, true))
      FROM procrastinate_jobs AS jobs
     WHERE jobs.task_name = CAST(:task AS varchar)
       AND jobs.status = 'todo'
       AND jobs.args @> jsonb_build_object('job_id', CAST(:job_id AS bigint))
    """
)
"""procrastinate's cancel, with `delete_job`, for every not-yet-started task of a bulk job.
Tasks already running finish (their results are kept); the task body also checks the job."""


DEFER_IMPORT = text(
    """
    SELECT cardinality(procrastinate_defer_jobs_v1(ARRAY[
        ROW(
            CAST(:queue AS varchar),
            CAST(:task AS varchar),
            CAST(:priority AS integer),
            CAST(:lock AS text),
            NULL,
            jsonb_build_object('job_id', CAST(:job_id AS bigint)),
            NULL
        )::procrastinate_job_to_defer_v1
    ]))
    """
)
"""The import task of a job read from a URL; its procrastinate `lock` keeps a second run of it
(a retry) from starting while the first still runs."""

ESTIMATED_ROWS = text("SELECT reltuples FROM pg_class WHERE oid = 'procrastinate_jobs'::regclass")


async def defer_verifications(
    session: AsyncSession,
    *,
    job_id: int,
    emails: Sequence[str],
    first_position: int = 0,
    chunk_size: int = DEFER_CHUNK,
) -> int:
    """Enqueue one verification task per address, on the session's connection and inside its
    transaction (nothing is visible to workers until the caller commits). Returns the count."""
    deferred = 0
    for start in range(0, len(emails), chunk_size):
        chunk = list(emails[start : start + chunk_size])
        result = await session.execute(
            DEFER_VERIFICATIONS,
            {
                "queue": VERIFY_QUEUE,
                "task": VERIFY_TASK,
                "job_id": job_id,
                "first": first_position + start,
                "emails": chunk,
            },
        )
        deferred += int(result.scalar_one() or 0)
    await _keep_fetch_planned(session, added=deferred)
    return deferred


async def defer_import(session: AsyncSession, *, job_id: int) -> None:
    """Enqueue the job's import task, in the session's transaction."""
    await session.execute(
        DEFER_IMPORT,
        {
            "queue": IMPORT_QUEUE,
            "task": IMPORT_TASK,
            "priority": IMPORT_PRIORITY,
            "lock": f"import-{job_id}",
            "job_id": job_id,
        },
    )


async def _keep_fetch_planned(session: AsyncSession, *, added: int) -> None:
    """Re-ANALYZE the queue when this job at least doubles what the planner thinks it holds.

    procrastinate's fetch query is fast only through its priority index. Planned on statistics
    of a near-empty queue, a freshly added job of 10,000 tasks is fetched by a bitmap scan and a
    sort of every waiting row instead: about 7 ms per fetch rather than 0.1, for every task,
    until autovacuum gets round to it (a minute or more). ANALYZE in this transaction counts its
    own new rows, takes about 0.1 s per 100,000, and its statistics are published on commit."""
    believed = await session.scalar(ESTIMATED_ROWS)
    if added and (believed is None or added > max(float(believed), 0.0)):
        await session.execute(text("ANALYZE procrastinate_jobs"))


async def cancel_pending(session: AsyncSession, *, job_id: int) -> int:
    """Cancel (and delete) the job's tasks no worker has started. Returns how many."""
    result = await session.execute(CANCEL_PENDING, {"task": VERIFY_TASK, "job_id": job_id})
    return int(result.scalar_one() or 0)


def make_app(
    conninfo: str,
    *,
    pool_size: int = 10,
    ride_out_outages: float | None = None,
    stopping: Stopping | None = None,
) -> App:
    """A procrastinate App on its own psycopg pool (`conninfo`: a plain libpq URL). Open it with
    `async with app.open_async():`. Tasks are added by the worker, not here.

    `ride_out_outages`: the longest pause (seconds) between tries of a query that found the
    database unreachable, retried until it is back (see `_RidingOutOutages`); None: raise.
    `stopping`: how long those retries go on once the worker is asked to stop."""
    pool: dict[str, Any] = {
        "conninfo": conninfo,
        "min_size": 1,
        "max_size": pool_size,
        "configure": _autocommit,
        "pool_factory": _Pool,
    }
    if ride_out_outages is None:
        return App(connector=PsycopgConnector(**pool))
    # psycopg_pool reconnects with a doubling delay and no cap (1, 2, 4 ... 128 s) for up to
    # `reconnect_timeout` (5 min), and a query waits `timeout` (30 s) for a connection: after a
    # 3-minute outage the queue came back a minute after the server. Short attempts instead
    # (each query that then waits for a connection starts a new one, at 1 s), and short waits.
    pool.update(
        reconnect_timeout=POOL_WINDOWS * ride_out_outages,
        timeout=POOL_WINDOWS * ride_out_outages,
    )
    return App(connector=_RidingOutOutages(max_delay=ride_out_outages, stopping=stopping, **pool))


POOL_WINDOWS = 2
"""With `ride_out_outages`, how many of its longest pauses the pool's reconnection attempts and
a query's wait for a connection last."""


async def _autocommit(connection: psycopg.AsyncConnection[Any]) -> None:
    # Each of procrastinate's queries is one statement (a function call): in a transaction of
    # its own, psycopg would add a BEGIN and a COMMIT round trip to every one.
    await connection.set_autocommit(True)


class _Pool(psycopg_pool.AsyncConnectionPool):
    """procrastinate's pool, checking only the connections that sat idle a while.

    procrastinate has its pool test every connection it hands out (an empty query: one more
    round trip per fetch and per finish, 8% of a worker's CPU); one just given back is as
    alive as it was then."""

    CHECK_AFTER = 5.0  # seconds idle

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._returned: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        kwargs.update(check=self._check_if_idle, reset=self._stamp)
        super().__init__(*args, **kwargs)

    async def _stamp(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self._returned[connection] = time.monotonic()

    async def _check_if_idle(self, connection: psycopg.AsyncConnection[Any]) -> None:
        if time.monotonic() - self._returned.get(connection, 0.0) >= self.CHECK_AFTER:
            await self.check_connection(connection)


POOL_LOGGER = "psycopg.pool"
FETCH_JOB = sql.queries["fetch_job"]
"""The query with which procrastinate's worker takes its next task (its `JobManager.fetch_job`):
after a stop is requested, not waited for."""
WORKER_ID_FKEY = "procrastinate_jobs_worker_id_fkey"
"""Violated by a fetch under a worker id whose registration was deleted (`DeclaredStalled`)."""


class _PoolLogInOutage(logging.Filter):
    """Lets the first of psycopg_pool's warnings through, as one line, and drops the following
    ones (connection attempts failing, broken connections dropped) until `quiet` is reset: by
    the connector, when a query succeeds again. Its other records pass untouched."""

    def __init__(self) -> None:
        super().__init__()
        self.quiet = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        if self.quiet:
            return False
        self.quiet = True
        text = record.getMessage()
        record.msg, record.args = (
            "%s (further pool warnings hidden until the database answers again)",
            (" ".join(text.split()),),
        )
        return True


class DeclaredStalled(Exception):
    """This worker's registration is gone: another worker pruned it as stalled (its heartbeat
    stopped while the database was down, say), so procrastinate can take no job under its id.
    The worker has to stop and register again (`worker.main`)."""


def _declared_stalled(exc: BaseException) -> bool:
    cause = exc.__cause__
    return (
        isinstance(cause, psycopg.errors.ForeignKeyViolation)
        and cause.diag.constraint_name == WORKER_ID_FKEY
    )


class _RidingOutOutages(PsycopgConnector):
    """procrastinate's connector, waiting out a database outage instead of raising.

    procrastinate 3.10's worker ends when a fetch, a heartbeat or its listener raises (a
    restart of PostgreSQL does exactly that), and abandons the tasks it runs. Here every query
    that failed because the server was unreachable (`is_outage`) is tried again, with a capped,
    jittered back-off, until it succeeds; meanwhile running tasks go on. The pool is checked
    first (its idle connections all died with the server), and psycopg_pool reconnects.

    A statement whose reply was lost after it committed is not told apart: a fetch run twice
    may leave one job `doing` until a retry of stalled jobs; the task bodies are idempotent.

    Once the worker is asked to stop (`stopping`), a fetch is not waited for at all and any
    other query only until the end of the shutdown grace period; then it raises `GaveUp`, and
    procrastinate's worker stops with the database still down. What it held stays `doing`
    with its worker's heartbeat ageing: another worker's retry of stalled jobs requeues it.

    psycopg_pool logs a warning, on two lines, for every failed connection attempt and every
    broken connection it drops: dozens per outage. One goes through, on one line; the rest
    are dropped until a query succeeds again (`_PoolLogInOutage`)."""

    def __init__(self, *, max_delay: float, stopping: Stopping | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_delay = max_delay
        self._stopping = stopping
        self._down_since: float | None = None
        self._pool_log = _PoolLogInOutage()

    async def open_async(self, pool: psycopg_pool.AsyncConnectionPool | None = None) -> None:
        logging.getLogger(POOL_LOGGER).addFilter(self._pool_log)
        try:
            await super().open_async(pool)
        except BaseException:
            logging.getLogger(POOL_LOGGER).removeFilter(self._pool_log)  # not closed then
            raise

    async def close_async(self) -> None:
        try:
            await super().close_async()
        finally:
            logging.getLogger(POOL_LOGGER).removeFilter(self._pool_log)

    async def _ride_out(self, query: Callable[[], Awaitable[T]], *, new_work: bool = False) -> T:
        result = await until_back(
            query,
            cap=self._max_delay,
            noticed=self._noticed,
            stopping=self._stopping,
            new_work=new_work,
        )
        self._pool_log.quiet = False
        if self._down_since is not None:
            log.warning("database back after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
        return result

    async def _noticed(self, exc: BaseException, attempt: int) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("database unavailable (%s); retrying until it is back", exc.__cause__)
        if attempt == 0 and self._async_pool is not None:
            await self._async_pool.check()  # drop the idle connections that died with it

    async def _wait(self, exc: BaseException, attempt: int) -> None:
        await self._noticed(exc, attempt)
        await asyncio.sleep(backoff(attempt, cap=self._max_delay))

    async def execute_query_async(self, query: LiteralString, **arguments: Any) -> None:
        await self._ride_out(
            lambda: super(_RidingOutOutages, self).execute_query_async(query, **arguments)
        )

    async def execute_query_one_async(
        self, query: LiteralString, **arguments: Any
    ) -> dict[str, Any]:
        try:
            return await self._ride_out(
                lambda: super(_RidingOutOutages, self).execute_query_one_async(query, **arguments),
                new_work=query == FETCH_JOB,
            )
        except Exception as exc:
            if query == FETCH_JOB and _declared_stalled(exc):
                raise DeclaredStalled(f"worker {arguments.get('worker_id')} was pruned") from exc
            raise

    async def execute_query_all_async(
        self, query: LiteralString, **arguments: Any
    ) -> list[dict[str, Any]]:
        return await self._ride_out(
            lambda: super(_RidingOutOutages, self).execute_query_all_async(query, **arguments)
        )

    async def listen_notify(self, on_notification: Notify, channels: Iterable[str]) -> None:
        """procrastinate's listener reconnects after a lost connection, but raises when the
        reconnection fails: here it is restarted, after a pause, until it connects."""
        channels = list(channels)
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                await super().listen_notify(on_notification, channels)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if time.monotonic() - started > self._max_delay:
                    attempt = 0  # it was listening: a new outage
                await self._wait(exc, attempt)
                attempt += 1


WEBHOOK_TASK = f"{NAMESPACE}:deliver_webhook"
"""POSTs one webhook message (`app.webhooks`). Arguments: job_id, kind, position (null for
on_complete), first_try (unix seconds: the delivery is given up `webhook_retry_for` after it)."""
WEBHOOK_QUEUE = "webhook"
"""Its own queue, and tasks that never wait on a receiver for more than the webhook timeout:
a slow receiver never holds up verification (its retries are scheduled, not slept)."""
WEBHOOK_PRIORITY = 10
"""A message is sent as soon as its row is stored, ahead of the verifications still queued
(workers take tasks by priority, then age): at priority 0 a row's message would wait behind
every row of its job, and of the jobs queued before it. Each worker posts at most
`webhook_concurrency` at once (`worker.deliveries`): past that, a message goes back to the
queue at `WEBHOOK_LATER_PRIORITY`, behind the verifications, so a slow receiver never takes
more of a worker than that."""
WEBHOOK_LATER_PRIORITY = LOWEST_PRIORITY

DEFER_WEBHOOKS = text(
    """
    SELECT cardinality(procrastinate_defer_jobs_v1(ARRAY(
        SELECT ROW(
                   CAST(:queue AS varchar),
                   CAST(:task AS varchar),
                   CAST(:priority AS integer),
                   NULL,
                   NULL,
                   jsonb_build_object(
                       'job_id', messages.job_id,
                       'kind', messages.kind,
                       'position', messages.position,
                       'first_try', extract(epoch FROM now())::float8
                   ),
                   NULL
               )::procrastinate_job_to_defer_v1
          FROM unnest(CAST(:job_ids AS bigint[]), CAST(:kinds AS text[]),
                      CAST(:positions AS int[])) AS messages(job_id, kind, position)
    )))
    """
)


async def defer_webhooks(
    session: AsyncSession, messages: Sequence[tuple[int, str, int | None]]
) -> int:
    """Enqueue one delivery task per (job_id, kind, position) in the session's transaction."""
    if not messages:
        return 0
    result = await session.execute(
        DEFER_WEBHOOKS,
        {
            "queue": WEBHOOK_QUEUE,
            "task": WEBHOOK_TASK,
            "priority": WEBHOOK_PRIORITY,
            "job_ids": [m[0] for m in messages],
            "kinds": [m[1] for m in messages],
            "positions": [m[2] for m in messages],
        },
    )
    return int(result.scalar_one() or 0)
