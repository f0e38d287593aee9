"""`GET /v0/bulk/{id}` on a job of 1,000,000 rows while workers write: p50/p95 in ms.

    .venv/bin/python -m bench.bulk_status [--rows 1000000] [--pending 20000] [--requests 500]

A scratch database gets a job of `rows` rows; all but the last `pending` are stored already
(bulk SQL, as if verified), the last `pending` are real tasks. Two real workers verify them
against the bench world (another process) while this script polls the status route of the API
(its own process), one request at a time, then four at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from app import queue
from app.db import jobs
from app.db.session import make_engine, make_sessionmaker, session_scope
from app.simulator.bench import bench_addresses
from bench import _support


async def defer_tail(database_url: str, job_id: int, first: int, count: int) -> None:
    emails = [a.email for a in bench_addresses()]
    tail = [emails[i % len(emails)] for i in range(count)]
    engine = make_engine(database_url, pool_size=1)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            await queue.defer_verifications(
                session, job_id=job_id, emails=tail, first_position=first
            )
    finally:
        await engine.dispose()


async def poll(base: str, job_id: int, requests: int, parallel: int) -> list[float]:
    timings: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def one_client(n: int) -> None:
            for _ in range(n):
                started = time.perf_counter()
                response = await client.get(f"/v0/bulk/{job_id}")
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
                body = response.json()
                assert body["total_processed"] == sum(body["summary"].values())

        await asyncio.gather(*(one_client(requests // parallel) for _ in range(parallel)))
    return timings


async def query_alone(database_url: str, job_id: int, requests: int) -> list[float]:
    """The status read itself (app.db.jobs.progress), without HTTP, on one connection."""
    engine = make_engine(database_url, pool_size=1)
    timings: list[float] = []
    try:
        async with make_sessionmaker(engine)() as session:
            for _ in range(requests):
                started = time.perf_counter()
                await jobs.progress(session, job_id)
                await session.commit()
                timings.append((time.perf_counter() - started) * 1000)
    finally:
        await engine.dispose()
    return timings


def processed(base: str, job_id: int) -> int:
    return int(httpx.get(f"{base}/v0/bulk/{job_id}", timeout=30).json()["total_processed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pending", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    done = args.rows - args.pending

    with _support.bench_world() as info, _support.scratch_database("status") as url:
        job_id = _support.create_job(url, args.rows)
        started = time.perf_counter()
        _support.fill_results(url, job_id, 0, done)
        print(f"stored {done:,} results by SQL in {time.perf_counter() - started:.0f} s")
        asyncio.run(defer_tail(url, job_id, done, args.pending))
        env = _support.env_for(
            url, **_support.world_settings(info), mx_concurrency=2, worker_concurrency=50
        )
        with _support.service(env, workers=2, concurrency=50) as base:
            while processed(base, job_id) < done + 200:
                time.sleep(0.2)
            print(f"GET /v0/bulk/{job_id}: {args.rows:,} rows, 2 workers writing")
            for parallel in (1, 4):
                before, t0 = processed(base, job_id), time.perf_counter()
                timings = asyncio.run(poll(base, job_id, args.requests, parallel))
                rate = (processed(base, job_id) - before) / (time.perf_counter() - t0)
                print(
                    f"  {parallel} client(s): p50 {_support.percentile(timings, 50):.1f} ms,"
                    f" p95 {_support.percentile(timings, 95):.1f} ms,"
                    f" max {max(timings):.1f} ms over {len(timings)} requests"
                    f" (workers storing {rate:.0f} rows/s meanwhile)"
                )
            timings = asyncio.run(query_alone(url, job_id, args.requests))
            print(
                f"  the query alone (app.db.jobs.progress): p50"
                f" {_support.percentile(timings, 50):.2f} ms,"
                f" p95 {_support.percentile(timings, 95):.2f} ms"
            )


if __name__ == "__main__":
    main()
