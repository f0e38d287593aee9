"""End to end: 10,000 addresses over 100 domains (10 MX hosts, 50 ms per reply) from
`POST /v0/bulk` to `complete`, beside procrastinate's own ceiling for no-op tasks.

    .venv/bin/python -m bench.bulk_end_to_end [--addresses 10000] [--workers 2] [--concurrency 50]

The bench world (app.simulator.bench) runs in a process of its own, the API and the workers in
theirs, all on one scratch database. Each MX allows 5 connections; until per-MX limits are
shared between workers (issue 4), each worker keeps to MXPROBE_MX_CONCURRENCY = 5 // workers.
Then the same number of no-op tasks is deferred and drained by as many no-op workers with the
same concurrency: the queue's ceiling on this machine, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

import httpx
import psycopg

from app.simulator.bench import bench_addresses
from bench import _support, noop_worker


def run_bulk(base: str, emails: list[str]) -> tuple[int, float]:
    """POST the list, poll until complete; print when half, 90% and 99% were done."""
    started = time.perf_counter()
    response = httpx.post(
        f"{base}/v0/bulk", json={"input_type": "array", "input": emails}, timeout=120
    )
    assert response.status_code == 200, response.text
    job_id = int(response.json()["job_id"])
    milestones = [0.5, 0.9, 0.99]
    while True:
        status = httpx.get(f"{base}/v0/bulk/{job_id}", timeout=30).json()
        elapsed = time.perf_counter() - started
        while milestones and status["total_processed"] >= milestones[0] * len(emails):
            print(f"  {milestones.pop(0):.0%} done at {elapsed:5.1f} s", flush=True)
        if status["job_status"] == "complete":
            return job_id, elapsed
        time.sleep(0.25)


async def defer_noops(database_url: str, count: int) -> None:
    from app import queue
    from app.db.session import libpq_url

    app = queue.make_app(libpq_url(database_url), pool_size=2)
    async with app.open_async():
        deferrer = app.configure_task(noop_worker.TASK, queue=noop_worker.QUEUE)
        await deferrer.batch_defer_async(*({} for _ in range(count)))
    # As the API does after a big job (queue._keep_fetch_planned): the same fetch plan for both.
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("ANALYZE procrastinate_jobs")


def noop_ceiling(database_url: str, count: int, workers: int, concurrency: int) -> float:
    asyncio.run(defer_noops(database_url, count))
    env = _support.env_for(database_url)
    started = time.perf_counter()
    procs = [
        _support.start(f"noop{n}", ["-m", "bench.noop_worker", str(concurrency)], env)
        for n in range(workers)
    ]
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s",
                    (noop_worker.TASK,),
                ).fetchone()
                if row is not None and row[0] == 0:
                    break
                time.sleep(0.05)
        return count / (time.perf_counter() - started)
    finally:
        for proc in procs:
            proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addresses", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    addresses = bench_addresses()[: args.addresses]
    emails = [a.email for a in addresses]
    per_mx = max(1, 5 // args.workers)

    with _support.bench_world(latency=0.05) as info, _support.scratch_database("e2e") as url:
        env = _support.env_for(
            url,
            **_support.world_settings(info),
            mx_concurrency=per_mx,
            worker_concurrency=args.concurrency,
            greylist_retry_delay=5,
        )
        with _support.service(env, workers=args.workers, concurrency=args.concurrency) as base:
            job_id, seconds = run_bulk(base, emails)
            results = httpx.get(f"{base}/v0/bulk/{job_id}/download", timeout=120).json()
        right = sum(
            r["is_reachable"] == a.expected.value
            for r, a in zip(results["results"], addresses, strict=True)
        )
        verdicts = Counter(r["is_reachable"] for r in results["results"])
        ceiling = noop_ceiling(url, args.addresses, args.workers, args.concurrency)

    rate = args.addresses / seconds
    print(
        f"end to end: {args.addresses:,} addresses, {args.workers} workers x concurrency "
        f"{args.concurrency}, {per_mx} connection(s) per MX per worker"
    )
    print(f"  POST to complete: {seconds:.1f} s = {rate:.0f} addresses/s")
    print(f"  verdicts as the world intends: {right:,}/{args.addresses:,} {dict(verdicts)}")
    print(f"  procrastinate no-op ceiling, same run: {ceiling:.0f} tasks/s")
    print(f"  ratio: {rate / ceiling:.2f} of the queue's ceiling")


if __name__ == "__main__":
    main()
