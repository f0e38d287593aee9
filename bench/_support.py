"""What the bulk benchmarks share: a scratch database, the service's processes (started as the
acceptance tests start them), the bench world in a process of its own, and SQL to fill a job
with a million results quickly.

The database is DATABASE_URL's server when set, else an embedded PostgreSQL under bench/out/.
Each benchmark makes a database of its own there and drops it at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from app.db import embedded, jobs, migrate
from tests.fixtures import services
from tests.fixtures.services import Service

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"


def _url_for(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A fresh database at head, dropped afterwards."""
    server = os.environ.get("DATABASE_URL") or embedded.start(OUT / "pg", cleanup="stop")
    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    admin = _url_for(server, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _url_for(server, name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def env_for(database_url: str, **settings: object) -> dict[str, str]:
    return services.service_env(
        database_url, {f"MXPROBE_{name.upper()}": str(value) for name, value in settings.items()}
    )


def start(name: str, args: list[str], env: dict[str, str]) -> Service:
    """A subprocess of the repository's Python, its output in bench/out/NAME.log."""
    OUT.mkdir(parents=True, exist_ok=True)
    return Service(name, args, env=env, logs=OUT)


def start_api(env: dict[str, str]) -> tuple[Service, str]:
    OUT.mkdir(parents=True, exist_ok=True)
    return services.start_api(env=env, logs=OUT)


def start_workers(env: dict[str, str], count: int, concurrency: int) -> list[Service]:
    OUT.mkdir(parents=True, exist_ok=True)
    return [
        services.start_worker(f"worker{n}", env=env, logs=OUT, concurrency=concurrency)
        for n in range(count)
    ]


@contextlib.contextmanager
def service(env: dict[str, str], *, workers: int, concurrency: int) -> Iterator[str]:
    """The API and `workers` worker processes while the block runs: the API's base URL."""
    api, base = start_api(env)
    procs = start_workers(env, workers, concurrency)
    try:
        yield base
    finally:
        for proc in procs:
            proc.stop()
        api.stop()


@contextlib.contextmanager
def bench_world(latency: float = 0.05) -> Iterator[dict[str, Any]]:
    """`start_bench_world` while the block runs: its address info."""
    world, info = start_bench_world(latency=latency)
    try:
        yield info
    finally:
        world.terminate()
        world.wait()


def start_bench_world(latency: float = 0.05) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """app.simulator.bench's world, served by a process of its own (so its event loop does not
    compete with the benchmark's)."""
    code = (
        "from app.simulator.bench import bench_world;"
        "from app.simulator.serve import serve_forever;"
        f"serve_forever(bench_world(latency={latency}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def world_settings(info: dict[str, Any]) -> dict[str, object]:
    return {
        "dns_nameservers": info["nameserver"],
        "smtp_ports": info["smtp_port"],
        "allow_private_mx": "true",
        "hello_name": "bench.mxprobe.test",
        "from_email": "bench@mxprobe.test",
    }


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


SAMPLE_OUTPUT: dict[str, Any] = {
    "input": "@@EMAIL@@",
    "is_reachable": "@@VERDICT@@",
    "misc": {
        "is_disposable": False,
        "is_role_account": False,
        "is_b2c": False,
        "gravatar_url": None,
        "haveibeenpwned": None,
    },
    "mx": {"accepts_mail": True, "records": ["mx001.bench.test.", "mx002.bench.test."]},
    "smtp": {
        "can_connect_smtp": True,
        "has_full_inbox": False,
        "is_catch_all": False,
        "is_deliverable": True,
        "is_disabled": False,
    },
    "syntax": {
        "address": "@@EMAIL@@",
        "domain": "d0001.bench.test",
        "is_valid_syntax": True,
        "username": "user1",
        "normalized_email": "@@EMAIL@@",
        "suggestion": None,
    },
    "debug": {
        "backend_name": "mxprobe",
        "start_time": "2026-01-01T00:00:00.000000Z",
        "end_time": "2026-01-01T00:00:00.312000Z",
        "duration": {"secs": 0, "nanos": 312000000},
        "smtp": {
            "verif_method": {
                "type": "Smtp",
                "host": "mx001.bench.test.",
                "verif_method": {
                    "from_email": "bench@mxprobe.test",
                    "hello_name": "bench.mxprobe.test",
                    "proxy": None,
                    "smtp_port": 25,
                    "smtp_timeout": {"secs": 10, "nanos": 0},
                    "retries": 1,
                },
            }
        },
        "provider": "other",
        "probe": {
            "category": "accept",
            "code": 250,
            "message": "2.1.5 Ok",
            "elapsed_ms": 51,
            "mx_host": "mx001.bench.test",
            "attempts": 1,
        },
    },
}
"""A realistic stored result (about 1.2 kB of JSON)."""

_FILL = """
INSERT INTO bulk_results (job_id, position, email, verdict, output)
SELECT %(job_id)s, p, e.email, v.verdict,
       replace(replace(%(template)s, '@@EMAIL@@', e.email), '@@VERDICT@@', v.verdict)::json
  FROM generate_series(%(start)s, %(stop)s - 1) AS p,
       LATERAL (SELECT 'user' || p || '@d' || lpad((p %% 100)::text, 4, '0') || '.bench.test'
                AS email) AS e,
       LATERAL (SELECT (ARRAY['safe','safe','safe','safe','safe','safe','safe',
                              'invalid','risky','unknown'])[p %% 10 + 1] AS verdict) AS v
"""

_COUNT = """
INSERT INTO bulk_job_counters
       (job_id, shard, total_safe, total_invalid, total_risky, total_unknown, last_counted_at)
SELECT job_id, position %% 16,
       count(*) FILTER (WHERE verdict = 'safe'), count(*) FILTER (WHERE verdict = 'invalid'),
       count(*) FILTER (WHERE verdict = 'risky'), count(*) FILTER (WHERE verdict = 'unknown'),
       now()
  FROM bulk_results WHERE job_id = %(job_id)s AND position >= %(start)s AND position < %(stop)s
 GROUP BY job_id, position %% 16
ON CONFLICT (job_id, shard) DO UPDATE SET
       total_safe = bulk_job_counters.total_safe + excluded.total_safe,
       total_invalid = bulk_job_counters.total_invalid + excluded.total_invalid,
       total_risky = bulk_job_counters.total_risky + excluded.total_risky,
       total_unknown = bulk_job_counters.total_unknown + excluded.total_unknown,
       last_counted_at = excluded.last_counted_at
"""


def create_job(database_url: str, total: int) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "INSERT INTO bulk_jobs (token, total_records) VALUES (%s, %s) RETURNING id",
            (jobs.new_token(), total),
        ).fetchone()
    assert row is not None
    return int(row[0])


def fill_results(
    database_url: str, job_id: int, start: int, stop: int, *, chunk: int = 100_000
) -> None:
    """Store results for positions [start, stop) and count them, as workers would have."""
    template = json.dumps(SAMPLE_OUTPUT)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for low in range(start, stop, chunk):
            high = min(stop, low + chunk)
            params = {"job_id": job_id, "template": template, "start": low, "stop": high}
            with conn.transaction():
                conn.execute(_FILL, params)
                conn.execute(_COUNT, params)
        conn.execute("VACUUM ANALYZE bulk_results")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
