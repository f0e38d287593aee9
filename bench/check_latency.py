"""Time per address for single checks against the simulated world, 50 ms per reply.

    .venv/bin/python -m bench.check_latency [--addresses N] [--latency S]

Runs the engine in-process (no database) against `bench_world` served by a separate process,
and prints: milliseconds per address checked one after another (the first address at a domain
pays the catch-all probe, later ones don't), SMTP round trips per address (from the fake MX
logs), addresses/s when checked concurrently within the per-MX limit, and accuracy against the
world's ground truth. No figure is asserted: these machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time

from app.engine import CheckRequest, LocalMxLimiter, Resolver, Verifier
from app.settings import Settings
from app.simulator.bench import bench_addresses


def _start_world(latency: float) -> tuple[subprocess.Popen[str], dict[str, object]]:
    code = (
        "from app.simulator.bench import bench_world;"
        "from app.simulator.serve import serve_forever;"
        f"serve_forever(bench_world(latency={latency}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


async def _run(args: argparse.Namespace, info: dict[str, object]) -> None:
    settings = Settings(
        dns_nameservers=(str(info["nameserver"]),),
        smtp_ports=(int(str(info["smtp_port"])),),
        allow_private_mx=True,
        hello_name="bench.mxprobe.test",
        from_email="bench@mxprobe.test",
    )
    addresses = bench_addresses()
    sample = addresses[: args.addresses]

    async def fresh_verifier() -> tuple[Verifier, Resolver]:
        resolver = Resolver(settings.dns_config())
        limiter = LocalMxLimiter(per_mx=5, total=1000)
        return Verifier(settings.probe_config(), resolver=resolver, limiter=limiter), resolver

    # One after another: the cost a single API call sees.
    verifier, resolver = await fresh_verifier()
    timings: list[tuple[str, float]] = []
    correct = 0
    for item in sample:
        started = time.perf_counter()
        output = await verifier.check(CheckRequest(to_email=item.email))
        timings.append((item.email.split("@")[1], time.perf_counter() - started))
        correct += output.is_reachable == item.expected.value
    await resolver.close()
    seen: set[str] = set()
    first, later = [], []
    for domain, seconds in timings:
        (later if domain in seen else first).append(seconds * 1000)
        seen.add(domain)
    print(f"sequential: {len(sample)} addresses, reply latency {args.latency * 1000:.0f} ms")
    print(f"  all addresses      mean {statistics.mean(t for _, t in timings) * 1000:7.1f} ms")
    if first:
        print(f"  first at a domain  mean {statistics.mean(first):7.1f} ms  (n={len(first)})")
    if later:
        print(f"  later at a domain  mean {statistics.mean(later):7.1f} ms  (n={len(later)})")
    print(f"  accuracy           {correct}/{len(sample)} verdicts as the world intends")

    # Concurrently, within 5 sessions per MX.
    verifier, resolver = await fresh_verifier()
    batch = addresses[: args.concurrent]
    started = time.perf_counter()
    outputs = await asyncio.gather(*(verifier.check(CheckRequest(to_email=a.email)) for a in batch))
    elapsed = time.perf_counter() - started
    await resolver.close()
    right = sum(o.is_reachable == a.expected.value for o, a in zip(outputs, batch, strict=True))
    print(
        f"concurrent: {len(batch)} addresses in {elapsed:.2f} s = {len(batch) / elapsed:.0f}/s"
        f" (5 sessions per MX), accuracy {right}/{len(batch)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addresses", type=int, default=300)
    parser.add_argument("--concurrent", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    proc, info = _start_world(args.latency)
    try:
        asyncio.run(_run(args, info))
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
