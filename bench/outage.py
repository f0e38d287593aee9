"""PostgreSQL stopped under a running bulk job, for as long as you like, and what the service
makes of it.

    .venv/bin/python -m bench.outage [--down 60] [--addresses 1000] [--workers 2]
    .venv/bin/python -m bench.outage --down 5 60 180        (one run each)

Each run starts a PostgreSQL of its own under bench/out/outage/ (the tests' RestartablePostgres,
migrated to head), a crowded simulated world (a few MX hosts refusing a 3rd simultaneous
connection with 421; every 5th address does not exist), the API and `--workers` worker
processes with the shipped settings but the per-MX limit, and submits one bulk job. After
about 20 % of the results are stored, PostgreSQL is stopped (`pg_ctl stop -m fast`) for
`--down` seconds, then started again. Status is polled through the API all along (5 a second).

Prints per run: how long PostgreSQL was down; status polls answered 503 and other 5xx (the
latter must be 0); seconds from PostgreSQL being back to the first result stored after it (as
a rule one held through the outage) and to more results than the workers can hold (so some of
tasks fetched after it); total wall time; whether every address got exactly one result, in
order; verdicts matching the world's; the workers' exit codes when stopped with SIGTERM at the
end; the most simultaneous connections each MX saw against the limit. Nothing is asserted:
the acceptance tests `tests/acceptance/test_database_restart.py` and `test_outage_shutdown.py`
assert the same.
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from app.db import embedded, migrate
from app.settings import Settings
from bench import _support
from tests.conftest import world_env
from tests.fixtures.bulk import Crowd
from tests.fixtures.restartable_postgres import RestartablePostgres
from tests.fixtures.services import Service, service_env, start_api, start_worker

MX_HOSTS = 5
LIMIT = 2
INVALID_EVERY = 5
LATENCY = 0.03
PER_DOMAIN = 40
BEFORE_OUTAGE = 0.2  # of the results stored when PostgreSQL is stopped


class StatusPoller(threading.Thread):
    """`GET /v0/bulk/{id}` every 0.2 s, counting the answers by status."""

    def __init__(self, base: str, job_id: int) -> None:
        super().__init__(daemon=True)
        self.url = f"{base}/v0/bulk/{job_id}"
        self.codes: Counter[int | str] = Counter()
        self.complete = threading.Event()
        self._halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._halt.is_set():
                try:
                    response = client.get(self.url)
                except httpx.HTTPError as exc:
                    self.codes[type(exc).__name__] += 1
                else:
                    self.codes[response.status_code] += 1
                    if response.status_code == 200 and response.json()["job_status"] == "complete":
                        self.complete.set()
                self._halt.wait(0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=15)


@dataclass
class Figures:
    down: float
    outage: float = 0.0
    polls: Counter[int | str] = field(default_factory=Counter)
    first_result_after: float | None = None
    past_in_hand_after: float | None = None
    in_hand: int = 0
    wall: float = 0.0
    exactly_once_in_order: bool = False
    verdicts_right: int = 0
    total: int = 0
    exit_codes: list[int] = field(default_factory=list)
    peaks: dict[str, int] = field(default_factory=dict)
    refused_421: int = 0
    complete: bool = False


def stored(url: str, job_id: int) -> int:
    with psycopg.connect(url, connect_timeout=2) as conn:
        row = conn.execute(
            "SELECT count(*) FROM bulk_results WHERE job_id = %s", (job_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def first_result_since(url: str, job_id: int, since: datetime, *, within: float) -> datetime | None:
    """The time the first result stored after `since` (the server's clock) was written."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT min(verified_at) FROM bulk_results WHERE job_id = %s AND verified_at >= %s",
                (job_id, since),
            ).fetchone()
        if row is not None and row[0] is not None:
            return row[0]  # type: ignore[no-any-return]
        time.sleep(0.05)
    return None


def server_now(url: str) -> datetime:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def one_run(down: float, *, root: Path, args: argparse.Namespace) -> Figures:
    figures = Figures(down=down)
    crowd = Crowd(
        mx_hosts=MX_HOSTS,
        limit=LIMIT,
        domains=max(1, args.addresses // PER_DOMAIN),
        per_domain=PER_DOMAIN,
        invalid_every=INVALID_EVERY,
    )
    emails, expected = crowd.emails, crowd.expected
    figures.total = len(emails)
    server = RestartablePostgres(root)
    server.start()
    try:
        embedded.ensure_database(server.admin_url, embedded.DATABASE)
        migrate.upgrade(server.url)
        with crowd.world(latency=LATENCY, max_invalid_rcpts=50) as world:
            env = service_env(
                server.url, {**world_env(world), "MXPROBE_MX_CONCURRENCY": str(LIMIT)}
            )
            api, base = start_api(env=env, logs=root)
            workers: list[Service] = []
            poller: StatusPoller | None = None
            try:
                workers = [
                    start_worker(f"worker{n}", env=env, logs=root, concurrency=args.concurrency)
                    for n in range(args.workers)
                ]
                started = time.perf_counter()
                created = httpx.post(
                    f"{base}/v0/bulk", json={"input_type": "array", "input": emails}, timeout=60
                )
                created.raise_for_status()
                job_id = int(created.json()["job_id"])
                poller = StatusPoller(base, job_id)
                poller.start()

                while stored(server.url, job_id) < BEFORE_OUTAGE * len(emails):
                    time.sleep(0.05)
                stopping = time.monotonic()
                server.stop("fast")
                time.sleep(down)
                server.start()
                back_at = time.monotonic()
                figures.outage = back_at - stopping
                back = server_now(server.url)
                count_back = stored(server.url, job_id)
                first = first_result_since(server.url, job_id, back, within=args.timeout)
                if first is not None:
                    figures.first_result_after = (first - back).total_seconds()
                # Results held through the outage are stored first; one more than the workers
                # can hold is certainly of a task fetched after it.
                figures.in_hand = args.workers * args.concurrency
                target = min(len(emails), count_back + figures.in_hand + 1)
                while stored(server.url, job_id) < target:
                    if time.monotonic() - back_at > args.timeout:
                        break
                    time.sleep(0.05)
                else:
                    figures.past_in_hand_after = time.monotonic() - back_at

                figures.complete = poller.complete.wait(timeout=args.timeout)
                figures.wall = time.perf_counter() - started
                results: list[dict[str, Any]] = httpx.get(
                    f"{base}/v0/bulk/{job_id}/download", timeout=60
                ).json()["results"]
                with psycopg.connect(server.url) as conn:
                    row = conn.execute(
                        "SELECT count(*), count(DISTINCT position) FROM bulk_results "
                        "WHERE job_id = %s",
                        (job_id,),
                    ).fetchone()
                figures.exactly_once_in_order = (
                    row == (len(emails), len(emails)) and [r["input"] for r in results] == emails
                )
                figures.verdicts_right = sum(
                    r["is_reachable"] == v for r, v in zip(results, expected, strict=False)
                )
            finally:
                if poller is not None:
                    poller.stop()
                    figures.polls = poller.codes
                figures.exit_codes = [worker.stop(timeout=60) for worker in workers]
                api.stop()
            figures.peaks = {host: r.peak_connections for host, r in world.recorders.items()}
            figures.refused_421 = sum(r.refused_421 for r in world.recorders.values())
    finally:
        if server.is_running():
            server.stop("fast")
        shutil.rmtree(server.pgdata, ignore_errors=True)  # the logs stay
    return figures


def report(figures: Figures, *, root: Path) -> None:
    polls = figures.polls
    answered_503 = polls.get(503, 0)
    other_5xx = sum(n for code, n in polls.items() if isinstance(code, int) and code >= 500) - (
        answered_503
    )
    not_http = sum(n for code, n in polls.items() if isinstance(code, str))
    after = (
        f"{figures.first_result_after:.1f} s"
        if figures.first_result_after is not None
        else "none in time"
    )
    peaks = ", ".join(f"{host} {peak}" for host, peak in sorted(figures.peaks.items()))
    print(f"PostgreSQL down {figures.down:g} s (stop to back: {figures.outage:.1f} s)")
    print(
        f"  status polls                  {sum(polls.values())}: 503 {answered_503}, "
        f"other 5xx {other_5xx}, no answer {not_http}"
    )
    past = (
        f"{figures.past_in_hand_after:.1f} s"
        if figures.past_in_hand_after is not None
        else "not in time"
    )
    print(f"  first result after it is back {after}")
    print(f"  past what the workers held    {past} ({figures.in_hand + 1} more results stored)")
    print(
        f"  wall time                     {figures.wall:.1f} s "
        f"({'complete' if figures.complete else 'NOT complete'})"
    )
    print(f"  exactly once, in order        {'yes' if figures.exactly_once_in_order else 'no'}")
    print(f"  verdicts right                {figures.verdicts_right}/{figures.total}")
    print(f"  worker exit codes (SIGTERM)   {figures.exit_codes}")
    print(
        f"  peak connections per MX       {peaks} (limit {LIMIT}); "
        f"{figures.refused_421} refused with 421"
    )
    print(f"  logs                          {root}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--down", type=float, nargs="+", default=[60.0], help="seconds down; one run each"
    )
    parser.add_argument("--addresses", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=10, help="per worker")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds to wait for the job after it is back"
    )
    args = parser.parse_args()
    retry_cap = Settings.model_fields["database_retry_max_delay"].default
    print(
        f"{args.addresses // PER_DOMAIN * PER_DOMAIN} addresses, {MX_HOSTS} MX hosts "
        f"(limit {LIMIT}, {LATENCY * 1000:g} ms per reply), {args.workers} workers x "
        f"{args.concurrency}; database_retry_max_delay {retry_cap:g} s (shipped)"
    )
    for index, down in enumerate(args.down):
        root = _support.OUT / "outage" / f"run{index}-{uuid.uuid4().hex[:6]}"
        report(one_run(down, root=root, args=args), root=root)


if __name__ == "__main__":
    main()
