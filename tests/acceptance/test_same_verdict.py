"""As a new user would: `mxprobe serve` (uvicorn's default loop, its own workers), then every
address of the simulated world through `POST /v0/check_email`, 16 requests in flight, and the
same list as one `POST /v0/bulk`. Each address gets the same verdict both ways, the one the
world says it should get, and every result is a Reacher `CheckEmailOutput`.

Greylisting (greylist.test holds each new triplet for 1 s) resolves the same way on both paths:
a single check waits `MXPROBE_CHECK_GREYLIST_WAIT` and asks again, a bulk job re-queues the
address after `MXPROBE_GREYLIST_RETRY_DELAY`; both are longer than the world's greylisting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.simulator import World
from app.simulator.standard import EXPECTED
from tests.conftest import world_env
from tests.fixtures.schema import output_errors
from tests.fixtures.services import Service, free_port, service_env

IN_FLIGHT = 16
ADDRESSES: dict[str, str] = {**EXPECTED, "not an email": "invalid"}
SETTINGS = {
    "MXPROBE_CHECK_GREYLIST_WAIT": "1.5",  # the world greylists for 1 s
    "MXPROBE_GREYLIST_RETRY_DELAY": "1.5",
    "MXPROBE_WORKER_POLL_INTERVAL": "0.2",  # retries come due without a notification
}


@pytest.fixture
def served(world: World, fresh_database_url: str, tmp_path: Path) -> Iterator[str]:
    """`mxprobe serve` on a free port, pointed at the world: the API's base URL."""
    port = free_port()
    env = service_env(fresh_database_url, {**world_env(world), **SETTINGS})
    service = Service(
        "serve", ["-m", "app.cli", "serve", "--port", str(port)], env=env, logs=tmp_path
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _healthy(base):
            assert service.process.poll() is None, f"serve exited:\n{service.output()}"
            assert time.monotonic() < deadline, f"serve never became healthy:\n{service.output()}"
            time.sleep(0.2)
        yield base
    finally:
        code = service.stop(timeout=30)
    assert code == 0, service.output()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def check_singly(base: str, addresses: list[str]) -> dict[str, dict[str, Any]]:
    with httpx.Client(base_url=base, timeout=60) as client:

        def check(address: str) -> dict[str, Any]:
            response = client.post("/v0/check_email", json={"to_email": address})
            assert response.status_code == 200, (address, response.text)
            return dict(response.json())

        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            results = list(pool.map(check, addresses))
    return dict(zip(addresses, results, strict=True))


def check_in_bulk(base: str, addresses: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with httpx.Client(base_url=base, timeout=30) as client:
        created = client.post("/v0/bulk", json={"input_type": "array", "input": addresses})
        assert created.status_code == 200, created.text
        job_id = created.json()["job_id"]
        deadline = time.monotonic() + 60
        while (status := client.get(f"/v0/bulk/{job_id}").json())["job_status"] != "complete":
            assert time.monotonic() < deadline, f"job not complete in time: {status}"
            time.sleep(0.25)
        results = client.get(f"/v0/bulk/{job_id}/download").json()["results"]
    return status, results


def test_check_email_and_bulk_give_every_address_the_same_verdict(
    served: str, world: World
) -> None:
    addresses = list(ADDRESSES)

    single = check_singly(served, addresses)
    world.reset_greylists()  # the bulk job meets greylisting afresh
    status, results = check_in_bulk(served, addresses)

    assert [r["input"] for r in results] == addresses
    bulk = dict(zip(addresses, results, strict=True))
    disagreements = {
        address: {
            "expected": expected,
            "check_email": single[address]["is_reachable"],
            "bulk": bulk[address]["is_reachable"],
            "check_email smtp": single[address]["smtp"],
            "bulk smtp": bulk[address]["smtp"],
        }
        for address, expected in ADDRESSES.items()
        if not single[address]["is_reachable"] == bulk[address]["is_reachable"] == expected
    }
    assert not disagreements, f"{len(disagreements)} of {len(addresses)} addresses:\n" + json.dumps(
        disagreements, indent=1, ensure_ascii=False
    )
    misshapen = {
        f"{path} {address}": problems
        for path, outputs in (("check_email", single), ("bulk", bulk))
        for address, output in outputs.items()
        if (problems := output_errors(output))
    }
    assert not misshapen, json.dumps(misshapen, indent=1, ensure_ascii=False)
    verdicts = list(ADDRESSES.values())
    assert status["summary"] == {
        f"total_{v}": verdicts.count(v) for v in ("safe", "invalid", "risky", "unknown")
    }
