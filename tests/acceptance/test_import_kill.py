"""A worker killed with -9 in the middle of reading a list from a URL: a second worker takes the
import up where the counted rows end, and the job ends with one task per line of the file, in
file order, and no import error.

The API and both workers are subprocesses; the list (60,000 lines) is served by a real HTTP
server on loopback, paced so that reading it takes a few seconds. Every verification task ever
deferred is recorded by a trigger on procrastinate's job table (tasks that succeed are deleted
from it, and results are upserted, so neither would show a row enqueued twice)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from app import imports, queue
from app.simulator import World
from tests.conftest import world_env
from tests.fixtures.bulk import check_counts, fast_bulk_env
from tests.fixtures.database import query
from tests.fixtures.http_files import Exchange, HttpFiles, Route
from tests.fixtures.http_files import http_files as http_files
from tests.fixtures.services import service_env, start_api, start_worker
from tests.fixtures.waiting import wait_for

LINES = 60_000
PIECE = 1_000  # lines per chunk sent...
PACE = 0.05  # ...every this many seconds: the list takes 3 s to read
# nxdomain.test has no DNS at all: a verification is one (cached) NXDOMAIN. The first line is an
# address: a first line that is not one, above lines that are, reads as a header.
FILE = [f"not an address {i}" if i % 50 == 49 else f"u{i}@nxdomain.test" for i in range(LINES)]

_AUDIT = """
CREATE TABLE deferred_verifications (job_id bigint, position int, email text);
CREATE FUNCTION record_deferral() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.task_name = %(task)s THEN
        INSERT INTO deferred_verifications
        VALUES ((NEW.args->>'job_id')::bigint, (NEW.args->>'position')::int, NEW.args->>'email');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER record_deferral AFTER INSERT ON procrastinate_jobs
    FOR EACH ROW EXECUTE FUNCTION record_deferral();
"""


def paced(lines: list[str]) -> Route:
    """The lines, chunked, `PIECE` lines every `PACE` seconds (until the server stops)."""

    def route(exchange: Exchange) -> None:
        exchange.send_head(200, {"Content-Type": "text/plain", "Transfer-Encoding": "chunked"})
        for start in range(0, len(lines), PIECE):
            exchange.write_chunk("".join(f"{x}\n" for x in lines[start : start + PIECE]).encode())
            if exchange.wait(PACE):
                return
        exchange.write_chunk(b"")

    return route


@pytest.fixture
def env(world: World, fresh_database_url: str) -> dict[str, str]:
    with psycopg.connect(fresh_database_url) as conn:
        conn.execute(_AUDIT.replace("%(task)s", f"'{queue.VERIFY_TASK}'"))
    return service_env(
        fresh_database_url,
        {**world_env(world), **fast_bulk_env(), "MXPROBE_ALLOW_PRIVATE_URLS": "true"},
    )


@pytest.fixture
def api(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    service, url = start_api(env=env, logs=tmp_path)
    yield url
    service.stop()


def test_an_import_killed_midway_resumes_in_another_worker(
    api: str, env: dict[str, str], tmp_path: Path, fresh_database_url: str, http_files: HttpFiles
) -> None:
    db = fresh_database_url
    source = http_files.serve("/list.txt", paced(FILE))
    first = start_worker("first", env=env, logs=tmp_path, concurrency=2)
    response = httpx.post(
        f"{api}/v0/bulk", json={"input_type": "remote_url", "input": source}, timeout=30
    )
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]

    def counted() -> int:
        return int(query(db, "SELECT total_records FROM bulk_jobs WHERE id = %s", job_id))

    wait_for(
        lambda: counted() >= imports.BATCH_ROWS,
        within=20,
        what="the first worker to count a batch",
        log=first,
    )
    first.kill()
    at_kill = counted()
    import_task = query(
        db, "SELECT status FROM procrastinate_jobs WHERE task_name = %s", queue.IMPORT_TASK
    )
    # Mid-import, whole batches only: the rows of a batch are counted with its tasks.
    assert 0 < at_kill < LINES
    assert at_kill % imports.BATCH_ROWS == 0
    assert import_task == "doing"
    assert query(db, "SELECT importing FROM bulk_jobs WHERE id = %s", job_id) is True

    second = start_worker("second", env=env, logs=tmp_path, concurrency=4)
    try:
        wait_for(
            lambda: not query(db, "SELECT importing FROM bulk_jobs WHERE id = %s", job_id),
            within=30,
            what="the import to end",
            log=second,
        )
        status = httpx.get(f"{api}/v0/bulk/{job_id}", timeout=5).json()
    finally:
        second_exit = second.stop()

    assert second_exit == 0, second.output()
    assert "jobs of stalled workers" in second.output()
    check_counts(status)
    assert status["total_records"] == LINES
    assert status.get("error") is None, status
    total, import_error = query(
        db, "SELECT total_records, import_error FROM bulk_jobs WHERE id = %s", job_id
    )
    assert (total, import_error) == (LINES, None)
    # Read three times: checked in the POST, by the first worker, by the second one.
    assert len(http_files.requests_for("/list.txt")) == 3

    # One task per line, ever: positions 0..N-1 in file order, nothing deferred twice.
    with psycopg.connect(db) as conn:
        deferred = conn.execute(
            "SELECT position, email FROM deferred_verifications WHERE job_id = %s "
            "ORDER BY position",
            (job_id,),
        ).fetchall()
        row = conn.execute(
            """
            SELECT
              (SELECT count(*) FROM generate_series(0, %(n)s - 1) AS p(position)
                WHERE NOT EXISTS (SELECT 1 FROM bulk_results r
                                   WHERE r.job_id = %(job)s AND r.position = p.position)
                  AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j
                                   WHERE j.task_name = %(task)s
                                     AND (j.args->>'job_id')::bigint = %(job)s
                                     AND (j.args->>'position')::int = p.position)),
              (SELECT count(*) FROM bulk_results r JOIN deferred_verifications d
                    ON d.job_id = r.job_id AND d.position = r.position
                WHERE r.job_id = %(job)s AND r.email <> d.email)
            """,
            {"n": LINES, "job": job_id, "task": queue.VERIFY_TASK},
        ).fetchone()
    assert row is not None
    orphans, wrong_results = row
    assert len(deferred) == LINES
    assert deferred == list(enumerate(FILE))
    # Each line is still queued or has its result (so none was lost with the first worker).
    assert (orphans, wrong_results) == (0, 0)
