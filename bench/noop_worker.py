"""A procrastinate worker whose only task does nothing: the queue's own ceiling.

    python -m bench.noop_worker CONCURRENCY     (DATABASE_URL in the environment)

Same connector, pool size and worker options as `worker.main`, so the difference between its
tasks/s and the real worker's addresses/s is the verification's cost, not the queue's.
"""

from __future__ import annotations

import asyncio
import os
import sys

from app import queue
from app.db.session import libpq_url

TASK = "bench:noop"
QUEUE = "bench"


async def noop() -> None:
    return None


async def main(concurrency: int) -> None:
    app = queue.make_app(libpq_url(os.environ["DATABASE_URL"]), pool_size=min(concurrency, 10) + 2)
    app.task(name=TASK, queue=QUEUE)(noop)
    async with app.open_async():
        await app.run_worker_async(
            queues=[QUEUE], concurrency=concurrency, delete_jobs="successful", name="noop"
        )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
