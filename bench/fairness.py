"""Jobs sharing the workers: how long a small job takes on an idle service, and submitted while
a long job runs (rows go by `queue.verify_priority`, not first come first served).

    .venv/bin/python -m bench.fairness [--big 5000] [--small 20] [--workers 2] [--concurrency 20]

The bench world (50 ms per reply) in a process of its own, the API and the workers in theirs,
one scratch database. First the small job alone; then the big job, and once a tenth of it is
verified, the small job again (other addresses, so the result cache has nothing to give): its
seconds from POST to complete, and how far the big job got meanwhile.
"""

from __future__ import annotations

import argparse
import time

import httpx

from app.simulator.bench import bench_addresses
from bench import _support


def submit(base: str, emails: list[str]) -> int:
    response = httpx.post(
        f"{base}/v0/bulk", json={"input_type": "array", "input": emails}, timeout=120
    )
    assert response.status_code == 200, response.text
    return int(response.json()["job_id"])


def status(base: str, job_id: int) -> dict[str, object]:
    body: dict[str, object] = httpx.get(f"{base}/v0/bulk/{job_id}", timeout=30).json()
    return body


def processed(base: str, job_id: int) -> int:
    return int(str(status(base, job_id)["total_processed"]))


def until_complete(base: str, job_id: int) -> float:
    """Seconds until the job is complete, from now."""
    started = time.perf_counter()
    while status(base, job_id)["job_status"] != "complete":
        time.sleep(0.05)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--big", type=int, default=5000)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    addresses = [a.email for a in bench_addresses()]
    needed = args.big + 2 * args.small
    assert len(addresses) >= needed, f"the bench world has {len(addresses)} addresses"
    big = addresses[: args.big]
    small_alone = addresses[args.big : args.big + args.small]
    small_shared = addresses[args.big + args.small : needed]

    with _support.bench_world(latency=0.05) as info, _support.scratch_database("fairness") as url:
        env = _support.env_for(
            url,
            **_support.world_settings(info),
            worker_concurrency=args.concurrency,
            greylist_retry_delay=5,
        )
        with _support.service(env, workers=args.workers, concurrency=args.concurrency) as base:
            alone = until_complete(base, submit(base, small_alone))
            big_job = submit(base, big)
            while processed(base, big_job) < args.big // 10:
                time.sleep(0.05)
            before = processed(base, big_job)
            shared = until_complete(base, submit(base, small_shared))
            after = processed(base, big_job)
            big_seconds = until_complete(base, big_job)

    print(
        f"fairness: {args.workers} workers x concurrency {args.concurrency}, 50 ms per reply; "
        f"a {args.small}-address job alone, and while a {args.big:,}-address job runs"
    )
    print(f"  small job alone:               {alone:5.1f} s from POST to complete")
    print(
        f"  small job beside the big one:  {shared:5.1f} s "
        f"(the big job went from row {before:,} to {after:,} meanwhile)"
    )
    print(f"  big job: complete {big_seconds:.1f} s after the small one")


if __name__ == "__main__":
    main()
