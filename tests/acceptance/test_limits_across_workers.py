"""Per-MX limits hold across worker processes: two workers, one budget per MX, and sessions
reused so that the list costs far fewer connections than addresses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.simulator import Behaviour, World
from tests.conftest import world_env
from tests.fixtures.bulk import Crowd, check_counts, fast_bulk_env
from tests.fixtures.services import service_env, start_api, start_worker

# every 5th address does not exist
CROWD = Crowd(mx_hosts=3, limit=2, domains=12, per_domain=15, invalid_every=5)
LIMIT = CROWD.limit


@pytest.fixture
def crowded_world() -> Iterator[World]:
    """A few MX hosts, each refusing a 3rd simultaneous connection with 421."""
    with CROWD.running(latency=0.02, max_invalid_rcpts=10) as world:
        yield world


def run_bulk(env: dict[str, str], emails: list[str], logs: Path) -> list[dict[str, object]]:
    """The list as one bulk job, on the API and two workers; its results in input order."""
    api, url = start_api(env=env, logs=logs)
    workers = [start_worker(f"w{n}", env=env, logs=logs, concurrency=10) for n in range(2)]
    try:
        job_id = httpx.post(
            f"{url}/v0/bulk", json={"input_type": "array", "input": emails}, timeout=30
        ).json()["job_id"]
        deadline = time.monotonic() + 120
        while True:
            status = httpx.get(f"{url}/v0/bulk/{job_id}", timeout=10).json()
            check_counts(status)
            if status["job_status"] == "complete":
                break
            assert time.monotonic() < deadline, "the job never completed"
            time.sleep(0.2)
        results: list[dict[str, object]] = httpx.get(
            f"{url}/v0/bulk/{job_id}/download", timeout=30
        ).json()["results"]
    finally:
        for worker in workers:
            worker.stop()
        api.stop()
    return results


def test_two_workers_never_exceed_the_per_mx_limit(
    crowded_world: World, fresh_database_url: str, tmp_path: Path
) -> None:
    env = service_env(
        fresh_database_url,
        {**world_env(crowded_world), **fast_bulk_env(), "MXPROBE_MX_CONCURRENCY": str(LIMIT)},
    )
    emails = CROWD.emails
    results = run_bulk(env, emails, tmp_path)

    assert [r["is_reachable"] for r in results] == CROWD.expected
    recorders = crowded_world.recorders
    assert max(r.peak_connections for r in recorders.values()) <= LIMIT
    assert sum(r.refused_421 for r in recorders.values()) == 0
    connections = sum(r.connections for r in recorders.values())
    assert connections <= len(emails) / 4, f"{connections} connections for {len(emails)} addresses"


def test_a_one_connection_server_never_sees_two_from_two_workers(
    fresh_database_url: str, tmp_path: Path
) -> None:
    """A dozen addresses at a server that allows one connection, among 200 in one job run
    by two workers: its budget starts at one session and no second is ever tried."""
    world = World()
    world.add_mx(
        "mx.one.test", ip="127.0.3.9", behaviour=Behaviour(max_connections=1, latency=0.02)
    )
    world.add_mx("mx.many.test", ip="127.0.3.10", behaviour=Behaviour(latency=0.02))
    world.add_domain("one.test", mx=[(10, "mx.one.test")], mailboxes=["u1", "u2", "u3"])
    world.add_domain("many.test", mx=[(10, "mx.many.test")], mailboxes=["ok"])
    ones = [f"u{i}@one.test" for i in range(12)]
    emails = ["ok@many.test" if i % 16 else ones[i // 16] for i in range(192)] + [
        "ok@many.test"
    ] * 8
    with world:
        env = service_env(fresh_database_url, {**world_env(world), **fast_bulk_env()})
        results = run_bulk(env, emails, tmp_path)
        one = world.recorder("mx.one.test")
        assert (one.peak_connections, one.refused_421) == (1, 0)
        assert world.total_data_commands() == 0

    verdicts = {r["input"]: r["is_reachable"] for r in results}
    assert [verdicts[a] for a in ones] == ["invalid", "safe", "safe", "safe"] + ["invalid"] * 8
    assert {r["is_reachable"] for r in results if r["input"] == "ok@many.test"} == {"safe"}
