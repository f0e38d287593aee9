"""Throughput within politeness (issue 4): 10,000 addresses over 100 domains on 10 MX hosts,
50 ms per reply, each MX answering 421 past 5 simultaneous connections, submitted through
`POST /v0/bulk` and run by 2 worker processes until `complete`.

    .venv/bin/python -m bench.politeness [--addresses 10000] [--workers 2] [--concurrency 50]

Prints: addresses/s end to end; the politeness bound (MX hosts x 5 / 0.05 s) and the ratio;
procrastinate's own ceiling for no-op tasks in the same run and the ratio; SMTP round trips and
connections per address and the most simultaneous connections each MX saw (from the fake MX
logs); DATA commands seen; verdict accuracy. Then the same list verified Reacher's way (one
connection per address, the catch-all probe never remembered) for comparison. Nothing is
asserted: these machines are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import subprocess
import time
from typing import Any

import httpx
import psutil

from app.simulator.bench import bench_addresses
from bench import _support
from bench.bulk_end_to_end import noop_ceiling, run_bulk

MX_HOSTS = 10
MAX_CONNECTIONS = 5
LATENCY = 0.05


def world_stats(world: subprocess.Popen[str]) -> dict[str, dict[str, int]]:
    assert world.stdout is not None
    world.send_signal(signal.SIGUSR1)
    stats: dict[str, dict[str, int]] = json.loads(world.stdout.readline())["stats"]
    return stats


def reset_world(world: subprocess.Popen[str]) -> None:
    world.send_signal(signal.SIGUSR2)
    time.sleep(0.3)


def _postgres_cpu() -> float:
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "postgres":
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run(
    url: str,
    info: dict[str, Any],
    world: subprocess.Popen[str],
    emails: list[str],
    expected: list[str],
    *,
    workers: int,
    concurrency: int,
    name: str,
    **settings: object,
) -> dict[str, Any]:
    reset_world(world)
    env = _support.env_for(
        url,
        **_support.world_settings(info),
        mx_concurrency=MAX_CONNECTIONS,
        worker_concurrency=concurrency,
        greylist_retry_delay=5,
        **settings,
    )
    api, base = _support.start_api(env)
    procs = _support.start_workers(env, workers, concurrency)
    try:
        pg_before, world_before = _postgres_cpu(), _cpu(world.pid)
        job_id, seconds = run_bulk(base, emails)
        cpu = {
            "workers": sum(_cpu(p.pid) for p in procs),
            "postgres": _postgres_cpu() - pg_before,
            "fake MXes": _cpu(world.pid) - world_before,
            "api": _cpu(api.pid),
        }
        results = httpx.get(f"{base}/v0/bulk/{job_id}/download", timeout=120).json()["results"]
    finally:
        for proc in procs:
            proc.stop()
        api.stop()
    stats = world_stats(world)
    right = sum(r["is_reachable"] == e for r, e in zip(results, expected, strict=True))
    n = len(emails)
    return {
        "name": name,
        "seconds": seconds,
        "rate": n / seconds,
        "right": right,
        "round_trips": sum(s["round_trips"] for s in stats.values()) / n,
        "connections": sum(s["connections"] for s in stats.values()) / n,
        "peak": {h: s["peak_connections"] for h, s in sorted(stats.items()) if s["connections"]},
        "refused_421": sum(s["refused_421"] for s in stats.values()),
        "data": sum(s["data"] for s in stats.values()),
        "cpu_ms": {k: v * 1000 / n for k, v in cpu.items()},
        "check_ms": statistics.mean(
            r["debug"]["duration"]["secs"] * 1000 + r["debug"]["duration"]["nanos"] / 1e6
            for r in results
        ),
    }


def report(result: dict[str, Any], n: int) -> None:
    print(f"{result['name']}:")
    print(f"  POST to complete     {result['seconds']:.1f} s = {result['rate']:.0f} addresses/s")
    print(f"  verdicts right       {result['right']:,}/{n:,}")
    print(f"  SMTP round trips     {result['round_trips']:.2f} per address (fake MX replies)")
    print(f"  connections          {result['connections']:.3f} per address")
    print(
        f"  peak connections/MX  {max(result['peak'].values())} (limit {MAX_CONNECTIONS}): "
        f"{result['peak']}"
    )
    print(f"  421 refusals         {result['refused_421']}")
    print(f"  engine time          {result['check_ms']:.0f} ms per check (mean, in the worker)")
    print(f"  DATA commands        {result['data']}")
    spent = ", ".join(f"{k} {v:.2f}" for k, v in result["cpu_ms"].items())
    print(f"  CPU ms per address   {spent} (2 cores = 2,000 ms/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addresses", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=LATENCY, help="seconds per reply")
    parser.add_argument("--skip-reacher-way", action="store_true")
    args = parser.parse_args()
    addresses = bench_addresses()[: args.addresses]
    emails = [a.email for a in addresses]
    expected = [a.expected.value for a in addresses]

    world, info = _support.start_bench_world(latency=args.latency)
    try:
        with _support.scratch_database("polite") as url:
            ours = run(
                url,
                info,
                world,
                emails,
                expected,
                workers=args.workers,
                concurrency=args.concurrency,
                name="mxprobe (session reuse, shared limits)",
            )
            ceiling = noop_ceiling(url, args.addresses, args.workers, args.concurrency)
        theirs = None
        if not args.skip_reacher_way:
            with _support.scratch_database("reacher") as url:
                theirs = run(
                    url,
                    info,
                    world,
                    emails,
                    expected,
                    workers=args.workers,
                    concurrency=args.concurrency,
                    name="Reacher's way (a connection per address, catch-all each time)",
                    session_idle_timeout=0,
                    catch_all_ttl=0,
                )
    finally:
        world.terminate()
        world.wait()

    n = len(emails)
    bound = MX_HOSTS * MAX_CONNECTIONS / max(args.latency, 1e-3)
    print(
        f"{n:,} addresses, {args.workers} workers x concurrency {args.concurrency}, "
        f"{MX_HOSTS} MX hosts x {MAX_CONNECTIONS} connections, {LATENCY * 1000:.0f} ms/reply"
    )
    report(ours, n)
    target = min(bound, ceiling)
    print(f"  politeness bound     {bound:.0f} addresses/s; ratio {ours['rate'] / bound:.2f}")
    print(
        f"  procrastinate no-op ceiling, same run: {ceiling:.0f} tasks/s; "
        f"ratio {ours['rate'] / ceiling:.2f}"
    )
    print(f"  ratio to min(bound, ceiling) = {target:.0f}/s: {ours['rate'] / target:.2f}")
    spent = sum(ours["cpu_ms"].values())
    print(
        f"  CPU per address, all processes: {spent:.1f} ms; a no-op task"
        f" at the ceiling costs about {2000 / ceiling:.1f} ms (both cores busy)"
    )
    # Everything (PostgreSQL, API, workers, the fake MXes) shares this machine's cores.
    cores = psutil.cpu_count() or 1
    print(
        f"  CPU-bound ceiling    {cores} cores / {spent:.1f} ms = {cores * 1000 / spent:.0f}"
        f" addresses/s; reached {ours['rate'] * spent / (cores * 1000):.0%}"
    )
    if theirs is not None:
        report(theirs, n)


if __name__ == "__main__":
    main()
