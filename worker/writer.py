"""Group commit: results of concurrent tasks are stored together, one statement per batch.

A task hands its result to the writer and waits until the batch holding it is committed, so a
task still only ends (and procrastinate only marks its job done) once its result is durable;
but fifty tasks finishing together cost one round trip and one transaction, not fifty.

While the database is unreachable (a restart, an outage), a batch is tried again, with a
capped, jittered back-off, until it is stored: the tasks wait with their results rather than
lose them. Storing is idempotent, so a batch whose commit was lost is harmlessly written again.
Once the worker is asked to stop, only until the end of its grace period (`Stopping`): then the
batch's tasks get `GaveUp`, and their jobs, left `doing`, are retried as stalled later.

Webhooks (`app.webhooks`) are enqueued in the same transaction: one `on_each_email` message per
row stored now (a row stored before, by an earlier run of its task, is not sent again), and the
`on_complete` message of a job whose last row this transaction counted. Jobs' webhook configs
never change: they are remembered, so a job without one costs nothing after its first batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import logs, metrics, queue, webhooks
from app.db import metrics as figures
from app.db import results
from app.db import webhooks as webhook_state
from app.db.session import session_scope
from app.outage import Stopping, is_outage, until_back

log = logging.getLogger(__name__)


class ResultWriter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_batch: int = 500,
        linger: float = 0.005,
        outage_max_delay: float = 5.0,
        stopping: Stopping | None = None,
    ) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._linger = linger
        self._outage_max_delay = outage_max_delay
        self._stopping = stopping
        self._pending: list[tuple[results.NewResult, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._webhooks: TTLCache[int, webhooks.WebhookConfig | None] = TTLCache(
            maxsize=4096, ttl=600.0
        )
        self._finished: TTLCache[int, bool] = TTLCache(maxsize=4096, ttl=3600.0)  # logged

    async def write(self, row: results.NewResult) -> None:
        """Return once `row` is committed (or raise what storing it raised)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="mxprobe-result-writer")
        await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._pending:
            # Linger a moment so the results of tasks finishing together share a batch.
            await asyncio.sleep(self._linger)
            batch, self._pending = (
                self._pending[: self._max_batch],
                self._pending[self._max_batch :],
            )
            try:
                stored = await self._store([row for row, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                        done.exception()  # retrieved by the waiting task, or by nobody
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
                if stored:  # once the tasks are free to go on
                    await self._log_finished({job_id for job_id, _ in stored})

    async def _store(self, rows: list[results.NewResult]) -> list[tuple[int, int]]:
        """Store `rows` (waiting out outages); the (job_id, position) of those stored now."""
        stored: list[tuple[int, int]] = []

        async def record() -> None:
            nonlocal stored
            async with session_scope(self._sessions) as session:
                stored_now = await results.store_many(session, rows)
                await self._enqueue_webhooks(session, stored_now)
            stored = stored_now  # of the try that committed

        async def noticed(exc: BaseException, attempt: int) -> None:
            if attempt == 0:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("database unavailable; %d results wait for it (%s)", len(rows), reason)

        await until_back(
            record, cap=self._outage_max_delay, noticed=noticed, stopping=self._stopping
        )
        metrics.ROWS_STORED.inc(len(stored))
        return stored

    async def _log_finished(self, job_ids: set[int]) -> None:
        """Log the jobs these rows finished ("job finished"), read once the rows are
        committed: of two workers storing a job's last rows at the same moment, the later
        reads every row, so the line is never missed (both may log it, rarely). Best effort:
        the rows are stored whatever happens here."""
        try:
            async with session_scope(self._sessions) as session:
                done = await figures.finished(session, sorted(job_ids - self._finished.keys()))
        except Exception as exc:
            if not is_outage(exc):
                log.exception("reading whether jobs %s finished", sorted(job_ids))
            return
        for job in done:
            self._finished[job.job_id] = True
            took = (job.finished_at - job.created_at).total_seconds() if job.finished_at else None
            logs.job_event(
                "job finished",
                job_id=job.job_id,
                rows=job.total_records,
                seconds=round(took, 3) if took is not None else None,
            )

    async def _enqueue_webhooks(self, session: AsyncSession, stored: list[tuple[int, int]]) -> None:
        job_ids = {job_id for job_id, _ in stored}
        unknown = [job_id for job_id in job_ids if job_id not in self._webhooks]
        if unknown:
            for job_id, stored_config in (await webhook_state.configs(session, unknown)).items():
                self._webhooks[job_id] = webhooks.WebhookConfig.from_json(stored_config)
        configs = {job_id: self._webhooks.get(job_id) for job_id in job_ids}
        messages: list[tuple[int, str, int | None]] = [
            (job_id, webhooks.ON_EACH_EMAIL, position)
            for job_id, position in stored
            if (config := configs[job_id]) is not None and config.on_each_email is not None
        ]
        waiting = [
            job_id
            for job_id, config in configs.items()
            if config is not None and config.on_complete is not None
        ]
        for job_id in await webhook_state.completed_now(session, waiting):
            messages.append((job_id, webhooks.ON_COMPLETE, None))
        await queue.defer_webhooks(session, messages)

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
