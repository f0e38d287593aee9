"""As a new user would: `mxprobe serve` (uvicorn's default loop, its own workers), then every
address of the simulated world through `POST /v0/check_email`, 16 requests in flight, and the
same list as one `POST /v0/bulk`, both `fresh` (probed now, whatever the result cache holds),
then every address once more through `POST /v0/check_email` as a client asks by default (the
result cache answers what it may). Each address gets the same verdict all three ways, the one
the world says it should get, and every result is a Reacher `CheckEmailOutput`.

Greylisting (greylist.test holds each new triplet for 1 s) resolves the same way on both paths:
a single check waits `MXPROBE_CHECK_GREYLIST_WAIT` and asks again, a bulk job re-queues the
address after `MXPROBE_GREYLIST_RETRY_DELAY`; both are longer than the world's greylisting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.simulator import World
from app.simulator.standard import EXPECTED
from tests.conftest import world_env
from tests.fixtures.schema import output_errors
from tests.fixtures.services import check_in_bulk, check_singly, service_env, start_serve

ADDRESSES: dict[str, str] = {**EXPECTED, "not an email": "invalid"}
UNCACHED = {"not an email"}
"""Never answered from the cache, besides `unknown`: bad syntax."""
SETTINGS = {
    "MXPROBE_CHECK_GREYLIST_WAIT": "1.5",  # the world greylists for 1 s
    "MXPROBE_GREYLIST_RETRY_DELAY": "1.5",
    "MXPROBE_WORKER_POLL_INTERVAL": "0.2",  # retries come due without a notification
}


@pytest.fixture
def served(world: World, fresh_database_url: str, tmp_path: Path) -> Iterator[str]:
    """`mxprobe serve` on a free port, pointed at the world: the API's base URL."""
    env = service_env(fresh_database_url, {**world_env(world), **SETTINGS})
    service, base = start_serve(env=env, logs=tmp_path)
    try:
        yield base
    finally:
        code = service.stop(timeout=30)
    assert code == 0, service.output()


def test_check_email_and_bulk_give_every_address_the_same_verdict(
    served: str, world: World
) -> None:
    addresses = list(ADDRESSES)

    single = check_singly(served, addresses, fresh=True)
    world.reset_greylists()  # the bulk job meets greylisting afresh
    status, results = check_in_bulk(served, addresses, fresh=True)
    world.reset_greylists()
    cached = check_singly(served, addresses)

    assert [r["input"] for r in results] == addresses
    bulk = dict(zip(addresses, results, strict=True))
    disagreements = {
        address: {
            "expected": expected,
            "check_email": single[address]["is_reachable"],
            "bulk": bulk[address]["is_reachable"],
            "cached": cached[address]["is_reachable"],
            "check_email smtp": single[address]["smtp"],
            "bulk smtp": bulk[address]["smtp"],
            "cached smtp": cached[address]["smtp"],
        }
        for address, expected in ADDRESSES.items()
        if not single[address]["is_reachable"]
        == bulk[address]["is_reachable"]
        == cached[address]["is_reachable"]
        == expected
    }
    assert not disagreements, f"{len(disagreements)} of {len(addresses)} addresses:\n" + json.dumps(
        disagreements, indent=1, ensure_ascii=False
    )
    misshapen = {
        f"{path} {address}": problems
        for path, outputs in (("check_email", single), ("bulk", bulk), ("cached", cached))
        for address, output in outputs.items()
        if (problems := output_errors(output))
    }
    assert not misshapen, json.dumps(misshapen, indent=1, ensure_ascii=False)
    verdicts = list(ADDRESSES.values())
    assert status["summary"] == {
        f"total_{v}": verdicts.count(v) for v in ("safe", "invalid", "risky", "unknown")
    }
    # the fresh paths probed (a fresh job probes a mailbox once: whichever of bücher.test's
    # two spellings came second is a hit); the last one was answered from the cache
    assert hits(single) == set()
    assert len(hits(bulk)) == 1
    assert hits(bulk) < {"alice@bücher.test", "alice@xn--bcher-kva.test"}
    assert hits(cached) == {a for a, v in ADDRESSES.items() if v != "unknown"} - UNCACHED


def hits(outputs: dict[str, dict[str, Any]]) -> set[str]:
    """The addresses answered from the result cache."""
    return {a for a, r in outputs.items() if r["debug"].get("cache", {}).get("hit")}
