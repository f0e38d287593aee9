"""`GET /metrics`: the API process's metrics (`app.metrics`), plus what the database says of
the queue and of the running jobs, read on a scrape at most every `DB_READ_EVERY` seconds
(scrapes from several Prometheus servers, or a refreshing browser, cost one read).

From the database, for every process's work, not this one's:

- `mxprobe_queue_tasks{queue, status}`: procrastinate's tasks by queue and state (`todo`,
  `doing`, `failed`, ...; successful tasks are deleted, so not counted);
- `mxprobe_jobs_running`: bulk jobs neither complete nor cancelled;
- per running job only (the series go when it ends, so the label set stays small):
  `mxprobe_job_rows_processed_total{job_id}` (rows stored so far: `rate()` it),
  `mxprobe_job_rows{job_id}` (its rows in all) and `mxprobe_job_rows_per_second{job_id}`
  (rows stored per second between this scrape's read and the one before);
- `mxprobe_database_up`: 0 when the last read failed for an outage (the figures above are
  then those of the last read that worked).

It follows `MXPROBE_HEADER_SECRET` like every route (it names job ids and MX groups).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable

from fastapi import APIRouter, Request, Response
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.db import metrics as figures
from app.db.session import session_scope
from app.outage import is_outage

DB_READ_EVERY = 5.0
"""Seconds a read of the database's figures serves scrapes for."""

router = APIRouter()


class DatabaseFigures(Collector):
    """The database's part of the API's `/metrics`: refreshed by `refresh` (async, in the
    route), served by `collect` (what prometheus-client calls, synchronously)."""

    def __init__(self, *, read_every: float = DB_READ_EVERY) -> None:
        self._read_every = read_every
        self._read_at = -math.inf
        self._lock = asyncio.Lock()
        self._up = True
        self._tasks: dict[tuple[str, str], int] = {}
        self._running: list[figures.JobCount] = []
        self._rates: dict[int, float] = {}
        self._before: dict[int, tuple[float, int]] = {}  # job → (when read, rows) last time

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        async with self._lock:
            if time.monotonic() - self._read_at < self._read_every:
                return
            try:
                async with session_scope(sessions) as session:
                    tasks = await figures.tasks_by_state(session)
                    running = await figures.running(session)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self._up = False
                return
            now = time.monotonic()
            self._read_at, self._up, self._tasks, self._running = now, True, tasks, running
            rates: dict[int, float] = {}
            for job in running:
                when, rows = self._before.get(job.job_id, (now, 0))
                if now > when:
                    rates[job.job_id] = (job.processed - rows) / (now - when)
            self._rates = rates
            self._before = {job.job_id: (now, job.processed) for job in running}

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "mxprobe_database_up", "1 when the last read of the database's figures worked"
        )
        up.add_metric([], 1 if self._up else 0)
        yield up
        tasks = GaugeMetricFamily(
            "mxprobe_queue_tasks",
            "Tasks in the queue (procrastinate_jobs) by queue and state",
            labels=["queue", "status"],
        )
        for (queue, status), count in sorted(self._tasks.items()):
            tasks.add_metric([queue, status], count)
        yield tasks
        running = GaugeMetricFamily(
            "mxprobe_jobs_running", "Bulk jobs neither complete nor cancelled"
        )
        running.add_metric([], len(self._running))
        yield running
        processed = CounterMetricFamily(
            "mxprobe_job_rows_processed",
            "Rows of a running bulk job verified and stored so far",
            labels=["job_id"],
        )
        rows = GaugeMetricFamily(
            "mxprobe_job_rows", "Rows of a running bulk job, in all", labels=["job_id"]
        )
        rates = GaugeMetricFamily(
            "mxprobe_job_rows_per_second",
            "Rows of a running bulk job stored per second, between the last two reads",
            labels=["job_id"],
        )
        for job in self._running:
            label = [str(job.job_id)]
            processed.add_metric(label, job.processed)
            rows.add_metric(label, job.total_records)
            if (rate := self._rates.get(job.job_id)) is not None:
                rates.add_metric(label, rate)
        yield from (processed, rows, rates)


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request) -> Response:
    """Prometheus' text format: this process's metrics and the database's figures."""
    database: DatabaseFigures = request.app.state.database_figures
    await database.refresh(request.app.state.sessionmaker)
    return Response(
        generate_latest(REGISTRY) + generate_latest(database), media_type=metrics.CONTENT_TYPE
    )
