"""`POST /v0/bulk` of 100,000 addresses: seconds until the API answers with the job_id.

    .venv/bin/python -m bench.bulk_submit [--addresses 100000] [--repeat 3]

The API runs as its own process (uvicorn) on a scratch database; every POST is the whole job:
JSON parsing and validation, the job row, one procrastinate task per address (deferred with
procrastinate's own SQL function on the API's connection), one commit. The in-process figure
is `app.bulk.submit` alone, without HTTP and JSON, on the same database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx
import psycopg

from app import bulk
from app.db.session import make_engine, make_sessionmaker, session_scope
from bench import _support


async def in_process(database_url: str, emails: list[str]) -> float:
    engine = make_engine(database_url, pool_size=1)
    try:
        started = time.perf_counter()
        async with session_scope(make_sessionmaker(engine)) as session:
            await bulk.submit(
                session, emails=emails, options=bulk.JobOptions(), max_emails=len(emails)
            )
        return time.perf_counter() - started
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    emails = [f"user{i}@d{i % 100:04d}.bench.test" for i in range(args.addresses)]
    body = json.dumps({"input_type": "array", "input": emails}).encode()

    with _support.scratch_database("submit") as url:
        api, base = _support.start_api(_support.env_for(url))
        try:
            print(f"POST /v0/bulk, {args.addresses:,} addresses ({len(body) / 1e6:.1f} MB body)")
            for attempt in range(args.repeat):
                started = time.perf_counter()
                response = httpx.post(
                    f"{base}/v0/bulk",
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=300,
                )
                elapsed = time.perf_counter() - started
                assert response.status_code == 200, response.text
                print(f"  run {attempt + 1}: {elapsed:.2f} s  -> {response.json()}")
        finally:
            api.stop()
        seconds = asyncio.run(in_process(url, emails))
        print(f"  app.bulk.submit in-process (no HTTP/JSON): {seconds:.2f} s")
        with psycopg.connect(url) as conn:
            tasks = conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()
        print(f"  tasks in the queue: {tasks[0] if tasks else 0:,}")


if __name__ == "__main__":
    main()
