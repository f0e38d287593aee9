"""Single checks and bulk against the whole simulated world, as a new user would run them.

    .venv/bin/python -m bench.same_verdict [--latency 0.02] [--in-flight 16]

Starts the shipped `mxprobe serve` (uvicorn's default loop, uvloop, and its two workers) on a
scratch database, pointed at the standard simulated world (every kind of server it has: plain
and STARTTLS, pipelining or not, replies cut every way, 452 / 450 4.2.1 mailboxes, greylisting,
a tarpit, a one-connection server, slow DNS ...). Then every address of the world's `EXPECTED`
table through `POST /v0/check_email`, `--in-flight` at a time, and the same list as one
`POST /v0/bulk`, both `fresh` (probed, not answered from the result cache). Prints each
path's accuracy against the world's ground truth, how often the two agree, their wall time,
what the one-connection server saw, DATA commands, and results that are not Reacher's
`CheckEmailOutput` shape. Nothing is asserted; the acceptance test
`tests/acceptance/test_same_verdict.py` asserts the same on every run of the suite.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from app.simulator.standard import EXPECTED, standard_world
from bench import _support
from tests.conftest import world_env
from tests.fixtures.schema import output_errors
from tests.fixtures.services import check_in_bulk, check_singly, service_env, start_serve

GREYLIST = {
    "MXPROBE_CHECK_GREYLIST_WAIT": "1.5",  # the world greylists new triplets for 1 s
    "MXPROBE_GREYLIST_RETRY_DELAY": "1.5",
    "MXPROBE_WORKER_POLL_INTERVAL": "0.2",
    "MXPROBE_SLOT_WAIT": "2",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per reply")
    parser.add_argument("--in-flight", type=int, default=16)
    args = parser.parse_args()
    addresses = list(EXPECTED)
    domains = {a.rsplit("@", 1)[1] for a in addresses}

    with (
        standard_world(latency=args.latency) as world,
        _support.scratch_database("same_verdict") as url,
    ):
        _support.OUT.mkdir(parents=True, exist_ok=True)
        env = service_env(url, {**world_env(world), **GREYLIST})
        serve, base = start_serve(env=env, logs=_support.OUT)
        try:
            started = time.perf_counter()
            single = check_singly(base, addresses, in_flight=args.in_flight, fresh=True)
            single_took = time.perf_counter() - started
            busy = world.recorder("mx.busy.test").summary()
            world.reset_greylists()
            world.reset_recorders()
            started = time.perf_counter()
            _, results = check_in_bulk(base, addresses, within=300, fresh=True)
            bulk_took = time.perf_counter() - started
            busy_bulk = world.recorder("mx.busy.test").summary()
        finally:
            serve.stop(timeout=30)
        data = world.total_data_commands()

    bulk = {r["input"]: r for r in results}
    n = len(addresses)
    right_single = sum(single[a]["is_reachable"] == v for a, v in EXPECTED.items())
    right_bulk = sum(bulk[a]["is_reachable"] == v for a, v in EXPECTED.items())
    agree = sum(single[a]["is_reachable"] == bulk[a]["is_reachable"] for a in addresses)
    misshapen = sum(bool(output_errors(o)) for o in [*single.values(), *bulk.values()])
    wrong = Counter(
        f"{a.rsplit('@', 1)[1]}: {v} -> {single[a]['is_reachable']}"
        for a, v in EXPECTED.items()
        if single[a]["is_reachable"] != v
    )
    print(f"{n} addresses over {len(domains)} domains, {args.latency * 1000:g} ms per reply")
    print(
        f"  /v0/check_email ({args.in_flight} in flight)  {right_single}/{n} right, "
        f"{single_took:.1f} s"
    )
    print(f"  /v0/bulk (one job)              {right_bulk}/{n} right, {bulk_took:.1f} s")
    print(f"  same verdict both ways          {agree}/{n}")
    print(f"  not Reacher's shape             {misshapen} of {2 * n} outputs")
    for label, seen in (("single checks", busy), ("bulk", busy_bulk)):
        print(
            f"  one-connection server, {label:13} {seen['connections']} connections, "
            f"peak {seen['peak_connections']}, {seen['refused_421']} refused with 421"
        )
    print(f"  DATA commands                   {data}")
    for line, count in wrong.most_common():
        print(f"  wrong (single): {line} x{count}")


if __name__ == "__main__":
    main()
