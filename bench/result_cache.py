"""The result cache across jobs: a second list of which half repeats an earlier job, with the
cache on (MXPROBE_RESULT_CACHE_TTL's default, one day) and off (0).

    .venv/bin/python -m bench.result_cache [--addresses 1000] [--concurrency 50] [--latency 0.05]

The bench world (app.simulator.bench: 100 domains on 10 MX hosts, each allowing 5
connections and answering after `--latency` seconds) runs in this process, so its recorders
count what the servers saw; the API and one worker (`python -m worker`) run in processes of
their own on a scratch database per setting. Per setting: job A is `--addresses` addresses;
job B is as many, half of them addresses of job A and half new. Prints, for each job, the
wall time from `POST /v0/bulk` to `complete`, and the RCPT commands, SMTP round trips and
connections the world's servers received, and how many of job B's rows say `debug.cache.hit`.
Nothing is asserted: `tests/integration/test_result_cache.py` asserts the behaviour.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import httpx

from app.simulator import World
from app.simulator.bench import bench_addresses, bench_world
from bench import _support


@dataclass(frozen=True)
class JobFigures:
    seconds: float
    rcpts: int
    round_trips: int
    connections: int
    cache_hits: int
    rows: int


def run_job(base: str, world: World, emails: list[str]) -> JobFigures:
    world.reset_recorders()
    started = time.perf_counter()
    response = httpx.post(
        f"{base}/v0/bulk", json={"input_type": "array", "input": emails}, timeout=120
    )
    assert response.status_code == 200, response.text
    job_id = int(response.json()["job_id"])
    while httpx.get(f"{base}/v0/bulk/{job_id}", timeout=30).json()["job_status"] != "complete":
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    results: list[dict[str, Any]] = httpx.get(
        f"{base}/v0/bulk/{job_id}/download", timeout=120
    ).json()["results"]
    seen = [recorder.summary() for recorder in world.recorders.values()]
    return JobFigures(
        seconds=seconds,
        rcpts=sum(s["rcpt"] for s in seen),
        round_trips=sum(s["round_trips"] for s in seen),
        connections=sum(s["connections"] for s in seen),
        cache_hits=sum(bool((r["debug"].get("cache") or {}).get("hit")) for r in results),
        rows=len(results),
    )


def run_setting(
    world: World, ttl: str, first: list[str], second: list[str], concurrency: int
) -> tuple[JobFigures, JobFigures]:
    with _support.scratch_database(f"cache_{'off' if ttl == '0' else 'on'}") as url:
        env = _support.env_for(
            url,
            dns_nameservers=world.nameserver,
            smtp_ports=world.smtp_port,
            allow_private_mx="true",
            hello_name="bench.mxprobe.test",
            from_email="bench@mxprobe.test",
            worker_concurrency=concurrency,
            result_cache_ttl=ttl,
        )
        with _support.service(env, workers=1, concurrency=concurrency) as base:
            return run_job(base, world, first), run_job(base, world, second)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addresses", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    n = args.addresses
    pool = [a.email for a in bench_addresses()]
    assert len(pool) >= n + n // 2, f"the bench world has {len(pool)} addresses"
    first = pool[:n]
    repeated = n // 2
    # half of job A's addresses (every other one), then as many new ones, interleaved
    second = [x for pair in zip(first[::2], pool[n : n + repeated], strict=False) for x in pair]
    second = second[:n]

    figures: dict[str, tuple[JobFigures, JobFigures]] = {}
    with bench_world(latency=args.latency) as world:
        for label, ttl in (("cache on (1 day)", "86400"), ("cache off (0)", "0")):
            figures[label] = run_setting(world, ttl, first, second, args.concurrency)
        data = world.total_data_commands()

    share = sum(1 for e in second if e in set(first)) / len(second)
    print(
        f"job A: {n:,} addresses; job B: {len(second):,} addresses, {share:.0%} of them in job "
        f"A; 1 worker x concurrency {args.concurrency}, {args.latency * 1000:g} ms per reply"
    )
    print(f"  {'':18} {'job':3} {'seconds':>8} {'RCPTs':>7} {'round trips':>12} {'conns':>6}")
    for label, jobs in figures.items():
        for name, job in zip("AB", jobs, strict=True):
            hits = f"  cache hits {job.cache_hits}/{job.rows}" if name == "B" else ""
            print(
                f"  {label:18} {name:3} {job.seconds:8.1f} {job.rcpts:7,} "
                f"{job.round_trips:12,} {job.connections:6,}{hits}"
            )
    on, off = figures["cache on (1 day)"][1], figures["cache off (0)"][1]
    print(
        f"  job B with the cache: {on.rcpts / max(1, off.rcpts):.0%} of the RCPTs, "
        f"{on.seconds / off.seconds:.0%} of the time of job B without it"
    )
    print(f"  DATA commands received: {data}")


if __name__ == "__main__":
    main()
