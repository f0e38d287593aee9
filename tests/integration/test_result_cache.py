"""The result cache (`app.cache`) against the simulated world and a real PostgreSQL: single
checks through the API and `mxprobe check`, bulk jobs through a real worker. The world's
recorders count the RCPT commands each address cost. A database per test."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from app.api.main import create_app
from app.cache import cache_key
from app.cli.main import cli
from app.db import result_cache
from app.db.session import make_engine, make_sessionmaker, session_scope
from app.engine import CheckRequest
from app.settings import Settings, get_settings
from app.simulator import World
from app.simulator.recorder import verb_of
from tests.conftest import world_env
from tests.fixtures.bulk import check_counts
from tests.fixtures.database import create_database, drop_database, query
from tests.integration.api.test_bulk_with_worker import bulk_settings, running_worker, wait_until


def rcpts(world: World, address: str) -> int:
    """RCPT commands for `address` its domain's MX received since the test began."""
    host = f"mx.{address.rsplit('@', 1)[1]}"
    return sum(
        1
        for _, line in world.recorder(host).commands
        if verb_of(line) == "RCPT" and f"<{address}>" in line.lower()
    )


def cache_of(output: dict[str, Any]) -> dict[str, Any]:
    """`debug.cache` (a KeyError when absent)."""
    cache: dict[str, Any] = output["debug"]["cache"]
    return cache


@pytest.fixture
def settings(world: World, fresh_database_url: str) -> Settings:
    return bulk_settings(world, fresh_database_url)


async def open_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for http in open_client(settings):
        yield http


async def check(client: httpx.AsyncClient, address: str, **options: Any) -> dict[str, Any]:
    response = await client.post("/v0/check_email", json={"to_email": address, **options})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- single checks --------------------------------------------------------------------------


async def test_a_second_check_is_answered_from_the_cache_with_its_age(
    client: httpx.AsyncClient, world: World
) -> None:
    first = await check(client, "alice@normal.test")
    await asyncio.sleep(0.2)
    second = await check(client, "alice@normal.test")
    third = (await client.post("/v1/check_email", json={"to_email": "alice@NORMAL.test"})).json()

    assert rcpts(world, "alice@normal.test") == 1
    assert first["is_reachable"] == second["is_reachable"] == third["is_reachable"] == "safe"
    assert cache_of(first) == {"hit": False}
    hit = cache_of(second)
    assert hit["hit"] is True
    assert 0.2 <= hit["age_seconds"] < 10
    assert hit["checked_at"].endswith("Z")
    # the rest of debug is the probe's, which the cached result is
    assert second["debug"]["start_time"] == first["debug"]["start_time"]
    assert second["debug"]["probe"] == first["debug"]["probe"]
    # the key ignores the domain's case; the output is this request's
    assert cache_of(third)["hit"] is True
    assert third["input"] == "alice@NORMAL.test"
    assert third["syntax"]["domain"] == "NORMAL.test"


async def test_fresh_probes_again_and_refreshes_the_cache(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    await check(client, "bob@normal.test")
    fresh = await check(client, "bob@normal.test", fresh=True)
    after = await check(client, "bob@normal.test")

    assert rcpts(world, "bob@normal.test") == 2
    assert cache_of(fresh) == {"hit": False}
    assert cache_of(after)["hit"] is True
    # the entry is the fresh probe's
    assert after["debug"]["start_time"] == fresh["debug"]["start_time"]
    assert settings.database_url is not None
    assert query(settings.database_url, "SELECT count(*) FROM result_cache") == 1


async def test_options_that_change_the_answer_are_part_of_the_key(
    client: httpx.AsyncClient, world: World
) -> None:
    await check(client, "alice@normal.test")
    other_sender = await check(client, "alice@normal.test", from_email="other@mxprobe.test")
    same_again = await check(client, "alice@normal.test", from_email="other@mxprobe.test")

    assert rcpts(world, "alice@normal.test") == 2
    assert cache_of(other_sender) == {"hit": False}
    assert cache_of(same_again)["hit"] is True


async def test_unknown_results_and_errors_are_never_stored_nor_reused(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    for _ in range(2):
        blocked = await check(client, "alice@blocked.test")
        assert blocked["is_reachable"] == "unknown"
        assert cache_of(blocked) == {"hit": False}
    servfail = await check(client, "x@servfail.test")
    invalid_syntax = await check(client, "not an email")

    assert rcpts(world, "alice@blocked.test") == 2
    assert servfail["is_reachable"] == "unknown"
    assert "cache" not in invalid_syntax["debug"]  # nothing to probe, nothing to cache
    assert settings.database_url is not None
    assert query(settings.database_url, "SELECT count(*) FROM result_cache") == 0


async def test_an_expired_entry_is_not_reused_and_is_pruned(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    url = settings.database_url
    assert url is not None
    await check(client, "alice@normal.test")
    query(url, "UPDATE result_cache SET checked_at = now() - interval '2 days' RETURNING 1")
    again = await check(client, "alice@normal.test")
    query(url, "UPDATE result_cache SET checked_at = now() - interval '2 days' RETURNING 1")

    assert rcpts(world, "alice@normal.test") == 2
    assert cache_of(again) == {"hit": False}
    engine = make_engine(url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            pruned = await result_cache.prune(session, ttl=settings.result_cache_ttl)
    finally:
        await engine.dispose()
    assert pruned == 1
    assert query(url, "SELECT count(*) FROM result_cache") == 0


async def test_ttl_zero_turns_the_cache_off(world: World, fresh_database_url: str) -> None:
    settings = bulk_settings(world, fresh_database_url, result_cache_ttl="0")
    async for client in open_client(settings):
        outputs = [await check(client, "alice@normal.test") for _ in range(2)]

    assert rcpts(world, "alice@normal.test") == 2
    assert all("cache" not in output["debug"] for output in outputs)
    assert query(fresh_database_url, "SELECT count(*) FROM result_cache") == 0


async def test_simultaneous_checks_of_one_address_probe_it_once(
    client: httpx.AsyncClient, world: World
) -> None:
    outputs = await asyncio.gather(*(check(client, "alice@slow.test") for _ in range(3)))

    assert rcpts(world, "alice@slow.test") == 1
    assert [o["is_reachable"] for o in outputs] == ["safe"] * 3
    assert sorted(cache_of(o)["hit"] for o in outputs) == [False, True, True]


def test_mxprobe_check_uses_the_cache_unless_fresh(
    world: World, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**world_env(world), "DATABASE_URL": fresh_database_url}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        runs = [
            runner.invoke(cli, ["check", "--json", *fresh, "alice@normal.test"])
            for fresh in ([], [], ["--fresh"])
        ]
    finally:
        get_settings.cache_clear()

    assert all(run.exit_code == 0 for run in runs), [run.output for run in runs]
    hits = [json.loads(run.stdout)["debug"]["cache"]["hit"] for run in runs]
    assert hits == [False, True, False]
    assert rcpts(world, "alice@normal.test") == 2


def test_mxprobe_check_on_a_database_never_migrated_probes_without_the_cache(
    world: World, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"mxprobe_empty_{uuid.uuid4().hex[:12]}"
    empty = create_database(database_url, name)
    for variable, value in {**world_env(world), "DATABASE_URL": empty}.items():
        monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    try:
        run = CliRunner().invoke(cli, ["check", "--json", "alice@normal.test"])
    finally:
        get_settings.cache_clear()
        drop_database(database_url, name)

    assert run.exit_code == 0, run.output
    output = json.loads(run.stdout)
    assert output["is_reachable"] == "safe"
    assert "cache" not in output["debug"]


# -- bulk jobs ------------------------------------------------------------------------------


async def submit(client: httpx.AsyncClient, emails: list[str], **options: Any) -> int:
    body = {"input_type": "array", "input": emails, **options}
    response = await client.post("/v0/bulk", json=body)
    assert response.status_code == 200, response.text
    return int(response.json()["job_id"])


async def run_job(client: httpx.AsyncClient, emails: list[str], **options: Any) -> list[Any]:
    job_id = await submit(client, emails, **options)
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        status = (await client.get(f"/v0/bulk/{job_id}")).json()
        check_counts(status)
        if status["job_status"] == "complete":
            break
        assert asyncio.get_running_loop().time() < deadline, status
        await asyncio.sleep(0.1)
    results: list[Any] = (await client.get(f"/v0/bulk/{job_id}/download")).json()["results"]
    return results


async def test_bulk_jobs_share_results_and_probe_a_duplicate_once(
    client: httpx.AsyncClient,
    world: World,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="worker.tasks")
    first_list = [
        "alice@slow.test",
        "alice@normal.test",
        "alice@slow.test",  # duplicates, in flight at the same time: probed once
        "nobody@normal.test",
        "alice@blocked.test",
        "alice@slow.test",
        "alice@blocked.test",  # unknown: probed each time
    ]
    second_list = ["alice@normal.test", "alice@slow.test", "alice@blocked.test", "bob@normal.test"]

    async with running_worker(settings):
        first = await run_job(client, first_list)
        after_first = {a: rcpts(world, a) for a in set(first_list)}
        second = await run_job(client, second_list)
        after_second = {a: rcpts(world, a) for a in set(second_list)}
        fresh = await run_job(client, [*second_list, "alice@normal.test"], fresh=True)
        after_fresh = {a: rcpts(world, a) for a in set(second_list)}

    assert [r["is_reachable"] for r in first] == [
        "safe",
        "safe",
        "safe",
        "invalid",
        "unknown",
        "safe",
        "unknown",
    ]
    assert after_first == {
        "alice@slow.test": 1,
        "alice@normal.test": 1,
        "nobody@normal.test": 1,
        "alice@blocked.test": 2,
    }
    slow_rows = [cache_of(r) for r in first if r["input"] == "alice@slow.test"]
    assert sorted(c["hit"] for c in slow_rows) == [False, True, True]
    # ... while the first was in flight, the others came back later for its result
    assert any("is being checked by another task" in r.getMessage() for r in caplog.records)
    # the second job: no new RCPT but for the unknown and the new address
    assert after_second == {
        "alice@normal.test": 1,
        "alice@slow.test": 1,
        "alice@blocked.test": 3,
        "bob@normal.test": 1,
    }
    assert [cache_of(r)["hit"] for r in second] == [True, True, False, False]
    assert all(cache_of(r)["age_seconds"] >= 0 for r in second[:2])
    # a fresh job probes every address again, yet its own duplicate only once
    assert after_fresh == {
        "alice@normal.test": 2,
        "alice@slow.test": 2,
        "alice@blocked.test": 4,
        "bob@normal.test": 2,
    }
    assert [r["is_reachable"] for r in fresh] == ["safe", "safe", "unknown", "safe", "safe"]
    assert settings.database_url is not None
    assert query(settings.database_url, "SELECT options FROM bulk_jobs ORDER BY id DESC LIMIT 1")[
        "fresh"
    ]


async def test_a_row_retried_after_its_worker_died_takes_its_own_claim_back(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    """A worker killed mid-probe leaves its claim on the address: the row's next run takes
    it back at once, while another row of the same address still waits for it."""
    assert settings.database_url is not None
    job_id = await submit(client, ["alice@normal.test", "alice@normal.test"])
    key, email = keyed("alice@normal.test", settings)
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            dead_run = await result_cache.lookup_or_claim(
                session, key, email=email, ttl=3600, claim_for=3600, holder=f"row {job_id}:0"
            )
        async with session_scope(make_sessionmaker(engine)) as session:
            other_row = await result_cache.lookup_or_claim(
                session, key, email=email, ttl=3600, claim_for=3600, holder=f"row {job_id}:1"
            )
    finally:
        await engine.dispose()
    assert dead_run.claimed
    assert not other_row.claimed  # the claim (an hour long) holds for anyone else

    async with running_worker(settings):
        status = await wait_until(client, job_id, done=lambda s: s["job_status"] == "complete")
    results = (await client.get(f"/v0/bulk/{job_id}/download")).json()["results"]

    assert status["total_processed"] == 2
    assert [r["is_reachable"] for r in results] == ["safe", "safe"]
    assert rcpts(world, "alice@normal.test") == 1  # row 0 probed, row 1 got its result
    assert [cache_of(r)["hit"] for r in results] == [False, True]


def keyed(address: str, settings: Settings) -> tuple[str, str]:
    """The cache key of a bulk row of `address` with no options, as a worker computes it."""
    found = cache_key(CheckRequest(to_email=address), settings.probe_config())
    assert found is not None
    return found
