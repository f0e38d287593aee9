"""PostgreSQL restarting (or crashing) under a running job ends nothing: the workers wait for
it and go on, the API answers 503 meanwhile, and every address gets exactly one result, in
order, with the per-MX limits held throughout. The server is the test's own
(`restartable_postgres`), never the session's shared one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.queue import VERIFY_TASK
from app.simulator import World
from tests.conftest import world_env
from tests.fixtures.bulk import Crowd, check_counts, fast_bulk_env
from tests.fixtures.database import query, stored_results
from tests.fixtures.restartable_postgres import RestartablePostgres, restartable_postgres
from tests.fixtures.services import Service, service_env, start_api, start_worker
from tests.fixtures.waiting import wait_for

__all__ = ["restartable_postgres"]  # the fixture, for this module's tests

# every 5th address does not exist
CROWD = Crowd(mx_hosts=3, limit=2, domains=12, per_domain=40, invalid_every=5)
EMAILS = CROWD.emails
EXPECTED = CROWD.expected
LIMIT = CROWD.limit


@pytest.fixture
def crowded_world() -> Iterator[World]:
    """A few slow-ish MX hosts, each refusing a 3rd simultaneous connection with 421."""
    with CROWD.running(latency=0.03, max_invalid_rcpts=50) as world:
        yield world


@pytest.fixture
def env(crowded_world: World, restartable_postgres: RestartablePostgres) -> dict[str, str]:
    return service_env(
        restartable_postgres.url,
        {
            **world_env(crowded_world),
            **fast_bulk_env(),
            "MXPROBE_MX_CONCURRENCY": str(LIMIT),
            "MXPROBE_DATABASE_RETRY_MAX_DELAY": "1",
        },
    )


class Run:
    """The API, two workers and one bulk job of EMAILS, on the test's own server."""

    def __init__(self, env: dict[str, str], logs: Path, server: RestartablePostgres) -> None:
        self.server = server
        self.api, self.url = start_api(env=env, logs=logs)
        self.workers: list[Service] = []
        created = httpx.post(
            f"{self.url}/v0/bulk", json={"input_type": "array", "input": EMAILS}, timeout=30
        )
        assert created.status_code == 200, created.text
        self.job_id: int = created.json()["job_id"]
        self.unavailable = 0  # status polls answered 503

    def start_workers(self, env: dict[str, str], logs: Path) -> None:
        self.workers += [start_worker(f"w{n}", env=env, logs=logs, concurrency=10) for n in (0, 1)]

    def progress_past(self, count: int) -> None:
        wait_for(
            lambda: stored_results(self.server.url, self.job_id) >= count,
            within=60,
            what=f"{count} results\n{self.logs()}",
        )

    def status(self) -> dict[str, Any] | None:
        """The job's status, or None while the API says the database is unavailable."""
        response = httpx.get(f"{self.url}/v0/bulk/{self.job_id}", timeout=10)
        if response.status_code == 503:
            assert response.json() == {"error": "database unavailable"}
            self.unavailable += 1
            return None
        assert response.status_code == 200, response.text
        status: dict[str, Any] = response.json()
        check_counts(status)
        return status

    def complete(self) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 120
        while (status := self.status()) is None or status["job_status"] != "complete":
            assert time.monotonic() < deadline, f"job not complete: {status}\n{self.logs()}"
            for worker in self.workers:
                assert worker.process.poll() is None, f"{worker.name} exited:\n{worker.output()}"
            time.sleep(0.2)
        assert status["total_processed"] == len(EMAILS)
        results: list[dict[str, Any]] = httpx.get(
            f"{self.url}/v0/bulk/{self.job_id}/download", timeout=30
        ).json()["results"]
        return results

    def assert_workers_alive(self) -> None:
        """Still running, and never stopped by procrastinate (a failed side task: heartbeat,
        listener, periodic deferrer)."""
        for worker in self.workers:
            assert worker.process.poll() is None, f"{worker.name} exited:\n{worker.output()}"
            assert "stopping worker" not in worker.output(), worker.output()

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.output()[-3000:]}" for w in self.workers)

    def stop(self) -> list[int]:
        codes = [worker.stop() for worker in self.workers]
        self.api.stop()
        return codes


@pytest.fixture
def run(
    env: dict[str, str], tmp_path: Path, restartable_postgres: RestartablePostgres
) -> Iterator[Run]:
    job = Run(env, tmp_path, restartable_postgres)
    try:
        yield job
    finally:
        job.stop()


def assert_exactly_once(run: Run, results: list[dict[str, Any]], world: World) -> None:
    run.assert_workers_alive()
    assert [r["input"] for r in results] == EMAILS
    assert [r["is_reachable"] for r in results] == EXPECTED
    row = query(
        run.server.url,
        "SELECT count(*), count(DISTINCT position) FROM bulk_results WHERE job_id = %s",
        run.job_id,
    )
    assert row == (len(EMAILS), len(EMAILS))
    # The queue drains: a row run twice across the outage (its worker declared dead) may have
    # been sent back once more to wait for its own first run's result in the result cache;
    # that task finds it and stores nothing new.
    wait_for(
        lambda: (
            query(
                run.server.url,
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s",
                VERIFY_TASK,
            )
            == 0
        ),
        within=20,
        what="no verification left in the queue",
    )
    assert query(
        run.server.url, "SELECT count(*) FROM bulk_results WHERE job_id = %s", run.job_id
    ) == len(EMAILS)
    recorders = world.recorders
    assert max(r.peak_connections for r in recorders.values()) <= LIMIT
    assert sum(r.refused_421 for r in recorders.values()) == 0


def test_workers_ride_out_two_restarts_under_a_running_job(
    run: Run, env: dict[str, str], tmp_path: Path, crowded_world: World
) -> None:
    run.start_workers(env, tmp_path)
    run.progress_past(len(EMAILS) // 5)
    run.server.restart("fast")
    run.progress_past(len(EMAILS) // 2)  # resumed after the first
    run.server.restart("fast")

    results = run.complete()

    assert_exactly_once(run, results, crowded_world)
    assert all("database unavailable" in w.output() for w in run.workers), run.logs()
    assert run.stop() == [0, 0], run.logs()


def test_a_worker_started_while_the_database_is_down_waits_for_it(
    run: Run, env: dict[str, str], tmp_path: Path, crowded_world: World
) -> None:
    run.server.stop("fast")
    run.start_workers(env, tmp_path)
    wait_for(
        lambda: all("database unavailable" in w.output() for w in run.workers),
        within=30,
        what=f"the workers to find the database down\n{run.logs()}",
    )
    assert all(w.process.poll() is None for w in run.workers), run.logs()
    run.server.start()

    results = run.complete()

    assert_exactly_once(run, results, crowded_world)
    assert run.stop() == [0, 0], run.logs()


def test_a_crash_of_postgresql_mid_job_loses_nothing(
    run: Run, env: dict[str, str], tmp_path: Path, crowded_world: World
) -> None:
    run.start_workers(env, tmp_path)
    run.progress_past(len(EMAILS) // 4)
    run.server.kill()  # SIGKILL to every PostgreSQL process
    time.sleep(1.0)  # down a while: the workers find it gone
    run.server.start()  # crash recovery from the WAL

    results = run.complete()

    assert_exactly_once(run, results, crowded_world)
    assert run.stop() == [0, 0], run.logs()


def test_mxprobe_bulk_follows_a_job_through_an_outage(
    run: Run, env: dict[str, str], tmp_path: Path
) -> None:
    """`mxprobe bulk --job` keeps polling while the API answers 503, and writes every result."""
    output = tmp_path / "results.csv"
    follower = Service(
        "bulk",
        ["-m", "app.cli", "bulk", "--job", str(run.job_id), "--url", run.url, "-o", str(output)],
        env={k: v for k, v in env.items() if k != "DATABASE_URL"},
        logs=tmp_path,
    )
    try:
        run.start_workers(env, tmp_path)
        run.progress_past(len(EMAILS) // 5)
        run.server.stop("fast")
        wait_for(lambda: run.status() is None, within=10, what="the API to answer 503")
        time.sleep(2.0)  # several of the follower's polls (twice a second) answered 503
        assert follower.process.poll() is None, follower.output()
        run.server.start()

        assert follower.process.wait(timeout=120) == 0, follower.output()
    finally:
        follower.stop()
    rows = output.read_text().splitlines()
    assert len(rows) == len(EMAILS) + 1, follower.output()
    assert run.unavailable >= 1
