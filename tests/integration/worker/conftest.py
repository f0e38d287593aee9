"""What the worker tests share: a task's JobContext on a real procrastinate App."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from procrastinate import JobContext
from procrastinate.jobs import Job

from app import queue
from app.db.session import make_engine, make_sessionmaker
from app.engine import Verifier
from app.settings import Settings
from worker import tasks
from worker.writer import ResultWriter


@asynccontextmanager
async def job_context(
    settings: Settings, verifier: Verifier, *, task_name: str, queue_name: str
) -> AsyncIterator[JobContext]:
    """The context procrastinate hands a running `task_name` task, with the worker's Deps
    (on `settings.database_url`); the database engine is disposed of afterwards."""
    assert settings.database_url is not None
    engine = make_engine(settings.database_url, pool_size=2)
    sessions = make_sessionmaker(engine)
    deps = tasks.Deps(
        settings=settings, verifier=verifier, sessions=sessions, writer=ResultWriter(sessions)
    )
    app = queue.make_app(settings.database_url, pool_size=2)
    try:
        async with app.open_async():
            yield JobContext(
                app=app,
                job=Job(id=0, queue=queue_name, lock=None, queueing_lock=None, task_name=task_name),
                additional_context={"deps": deps},
                start_timestamp=time.time(),
                abort_reason=lambda: None,
            )
    finally:
        await engine.dispose()
