"""A worker told to stop (SIGTERM, as `docker stop` and systemd send it) while PostgreSQL is
down does not wait for the database forever: it exits 0 within `worker_shutdown_timeout` (and
a little). Nothing it held is lost: the results it had in hand are stored if the database is
back in time, and the tasks it still held go back to the queue (or are retried as stalled by
another worker once the database is back)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.simulator import World
from tests.conftest import world_env
from tests.fixtures.bulk import Crowd, fast_bulk_env
from tests.fixtures.database import query, stored_results
from tests.fixtures.restartable_postgres import RestartablePostgres, restartable_postgres
from tests.fixtures.services import Service, service_env, start_api, start_worker
from tests.fixtures.waiting import wait_for

__all__ = ["restartable_postgres"]  # the fixture, for this module's tests

SHUTDOWN_TIMEOUT = 3.0
SLACK = 2.5  # process exit, closing pools: "a little"
CROWD = Crowd(mx_hosts=2, limit=3, domains=4, per_domain=30, invalid_every=4)
EMAILS = CROWD.emails
EXPECTED = CROWD.expected
LIMIT = CROWD.limit


@pytest.fixture
def crowded_world() -> Iterator[World]:
    with CROWD.running(latency=0.05, max_invalid_rcpts=50) as world:
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
            "MXPROBE_WORKER_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
            "MXPROBE_WORKER_HEARTBEAT_INTERVAL": "0.5",
            "MXPROBE_WORKER_STALLED_TIMEOUT": "2",
        },
    )


class Job:
    """The API and one bulk job of EMAILS on the test's own server; workers added by tests."""

    def __init__(self, env: dict[str, str], logs: Path, server: RestartablePostgres) -> None:
        self.env = env
        self.logs = logs
        self.server = server
        self.api, self.url = start_api(env=env, logs=logs)
        self.workers: list[Service] = []
        created = httpx.post(
            f"{self.url}/v0/bulk", json={"input_type": "array", "input": EMAILS}, timeout=30
        )
        assert created.status_code == 200, created.text
        self.id: int = created.json()["job_id"]

    def start_worker(self, name: str) -> Service:
        worker = start_worker(name, env=self.env, logs=self.logs, concurrency=6)
        self.workers.append(worker)
        return worker

    def output(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.output()[-4000:]}" for w in self.workers)

    def progress_past(self, count: int) -> None:
        wait_for(
            lambda: stored_results(self.server.url, self.id) >= count,
            within=60,
            what=f"{count} results\n{self.output()}",
        )

    def outage_mid_job(self, worker: Service) -> None:
        """Stop PostgreSQL mid-job and wait until `worker`, with tasks in hand, found it down."""
        self.progress_past(len(EMAILS) // 5)
        self.server.stop("fast")
        wait_for(
            lambda: "database unavailable" in worker.output(),
            within=30,
            what=f"{worker.name} to find the database down\n{self.output()}",
        )

    def results(self) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 90
        while True:
            response = httpx.get(f"{self.url}/v0/bulk/{self.id}", timeout=10)
            if response.status_code == 200 and response.json()["job_status"] == "complete":
                break
            assert time.monotonic() < deadline, f"not complete: {response.text}\n{self.output()}"
            time.sleep(0.2)
        results: list[dict[str, Any]] = httpx.get(
            f"{self.url}/v0/bulk/{self.id}/download", timeout=30
        ).json()["results"]
        return results

    def assert_exactly_once(self, world: World) -> None:
        results = self.results()
        assert [r["input"] for r in results] == EMAILS
        assert [r["is_reachable"] for r in results] == EXPECTED
        url = self.server.url
        counted = query(
            url,
            "SELECT count(*), count(DISTINCT position) FROM bulk_results WHERE job_id = %s",
            self.id,
        )
        assert counted == (len(EMAILS), len(EMAILS))
        left = query(
            url, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s", VERIFY_TASK
        )
        assert left == 0
        assert max(r.peak_connections for r in world.recorders.values()) <= LIMIT

    def stop(self) -> list[int]:
        codes = [worker.stop() for worker in self.workers]
        self.api.stop()
        return codes


VERIFY_TASK = "mxprobe:verify_address"


@pytest.fixture
def job(
    env: dict[str, str], tmp_path: Path, restartable_postgres: RestartablePostgres
) -> Iterator[Job]:
    running = Job(env, tmp_path, restartable_postgres)
    try:
        yield running
    finally:
        running.stop()


def sigterm(worker: Service) -> tuple[int | None, float]:
    """SIGTERM, as `docker stop` sends it: the exit status (None: still running long after the
    bound) and how long the worker took to exit."""
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    try:
        code: int | None = worker.process.wait(timeout=SHUTDOWN_TIMEOUT + 30)
    except subprocess.TimeoutExpired:
        code = None
    return code, time.monotonic() - started


def test_a_worker_stopped_while_the_database_stays_down_exits_in_time(
    job: Job, crowded_world: World
) -> None:
    stopped, other = job.start_worker("w0"), job.start_worker("w1")
    job.outage_mid_job(stopped)

    code, took = sigterm(stopped)
    time.sleep(1.0)  # down a while longer: what it held waits for another worker
    job.server.start()

    assert code == 0, stopped.output()
    assert took <= SHUTDOWN_TIMEOUT + SLACK, stopped.output()
    assert "stopped with the database unavailable" in stopped.output()
    # psycopg_pool's warnings (every failed attempt, every dropped connection): one per outage.
    assert stopped.output().count(" psycopg.pool ") == 1, stopped.output()
    # The other worker retries the tasks it held as stalled: every address exactly once.
    job.assert_exactly_once(crowded_world)
    assert other.process.poll() is None, other.output()
    assert other.output().count(" psycopg.pool ") == 1, other.output()
    assert job.stop() == [0, 0], job.output()


def test_a_worker_stopped_in_an_outage_stores_its_results_if_the_database_returns_in_time(
    job: Job, crowded_world: World
) -> None:
    stopped = job.start_worker("w0")
    job.outage_mid_job(stopped)

    job.server.start()  # PostgreSQL is back within the shutdown timeout ...
    code, took = sigterm(stopped)  # ... which began as it was starting

    assert code == 0, stopped.output()
    assert took <= SHUTDOWN_TIMEOUT + SLACK, stopped.output()
    assert "database back" in stopped.output()
    # Every task it held is finished (its result stored) or back in the queue: none is left
    # `doing` for the retry of stalled jobs.
    doing = query(
        job.server.url,
        "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing' AND task_name = %s",
        VERIFY_TASK,
    )
    assert doing == 0, stopped.output()
    job.start_worker("w1")
    job.assert_exactly_once(crowded_world)
    assert job.stop() == [0, 0], job.output()


def test_a_worker_waiting_for_the_database_to_start_stops_at_once(job: Job) -> None:
    job.server.stop("fast")
    waiting = job.start_worker("w0")
    wait_for(
        lambda: "database unavailable" in waiting.output(),
        within=30,
        what=f"the worker to find the database down\n{waiting.output()}",
    )

    code, took = sigterm(waiting)

    assert code == 0, waiting.output()
    assert took <= SLACK, waiting.output()
