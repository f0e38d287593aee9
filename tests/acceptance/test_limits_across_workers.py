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
from tests.fixtures.bulk import check_counts, fast_bulk_env
from tests.fixtures.services import service_env, start_api, start_worker

MX_HOSTS = 3
LIMIT = 2
DOMAINS = 12
PER_DOMAIN = 15
INVALID_EVERY = 5  # every 5th address does not exist


@pytest.fixture
def crowded_world() -> Iterator[World]:
    """A few MX hosts, each refusing a 3rd simultaneous connection with 421."""
    world = World()
    for m in range(MX_HOSTS):
        world.add_mx(
            f"mx{m}.crowd.test",
            ip=f"127.0.3.{m + 1}",
            behaviour=Behaviour(max_connections=LIMIT, latency=0.02, max_invalid_rcpts=10),
        )
    for d in range(DOMAINS):
        world.add_domain(
            f"d{d}.crowd.test",
            mx=[(10, f"mx{d % MX_HOSTS}.crowd.test")],
            mailboxes=[f"u{i}" for i in range(PER_DOMAIN) if i % INVALID_EVERY],
        )
    with world:
        yield world
        assert world.total_data_commands() == 0


def test_two_workers_never_exceed_the_per_mx_limit(
    crowded_world: World, fresh_database_url: str, tmp_path: Path
) -> None:
    env = service_env(
        fresh_database_url,
        {**world_env(crowded_world), **fast_bulk_env(), "MXPROBE_MX_CONCURRENCY": str(LIMIT)},
    )
    emails = [f"u{i}@d{d}.crowd.test" for i in range(PER_DOMAIN) for d in range(DOMAINS)]
    api, url = start_api(env=env, logs=tmp_path)
    workers = [start_worker(f"w{n}", env=env, logs=tmp_path, concurrency=10) for n in range(2)]
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
        results = httpx.get(f"{url}/v0/bulk/{job_id}/download", timeout=30).json()["results"]
    finally:
        for worker in workers:
            worker.stop()
        api.stop()

    verdicts = [r["is_reachable"] for r in results]
    expected = [
        "invalid" if i % INVALID_EVERY == 0 else "safe"
        for i in range(PER_DOMAIN)
        for _ in range(DOMAINS)
    ]
    assert verdicts == expected
    recorders = crowded_world.recorders
    assert max(r.peak_connections for r in recorders.values()) <= LIMIT
    assert sum(r.refused_421 for r in recorders.values()) == 0
    connections = sum(r.connections for r in recorders.values())
    assert connections <= len(emails) / 4, f"{connections} connections for {len(emails)} addresses"
