"""A list of 1,000,000 lines from a URL, as an upload, and as a gzipped CSV: seconds from the
POST to every row enqueued, and the peak memory of the API and of the worker.

    .venv/bin/python -m bench.list_import [--lines 1000000] [--invalid-every 25]
                                          [--concurrency 1] [--runs url upload csv]

The list is `uN@bench.test`, one per line, every `--invalid-every`-th line not an address.
Each run has a scratch database of its own, the API (uvicorn, its own process) with
MXPROBE_ALLOW_PRIVATE_URLS=true and MXPROBE_BULK_MAX_BYTES raised to 256 MiB, and an empty
simulated world as DNS (bench.test is NXDOMAIN, so a verification is one cached answer).

- `url`: the list served chunked from loopback by the tests' file server (generated as it is
  sent: the server never holds it whole), `POST /v0/bulk` `input_type: "remote_url"`, and one
  worker process (`python -m worker --concurrency`). The POST checks the URL and answers; the
  worker reads the list and enqueues it in counted batches. "Enqueued" is `total_records`
  reaching the line count, polled through `GET /v0/bulk/{id}` every 0.1 s. With the default
  concurrency of 1 the worker's one slot holds the import, so nothing is verified until the
  list is in: the figure is the enqueueing alone. A higher concurrency verifies meanwhile.
- `upload`: the same file from disk (bench/out/), `multipart/form-data` streamed by httpx as
  `curl -F file=@list.txt` sends it. The API enqueues every row inside the POST, so the POST's
  latency is the figure and the API's memory is the one that matters (target: under 200 MB).
  No worker runs.
- `csv`: 1,000,000 rows of `name,email,company` (a quoted company with a comma), gzipped
  (a `.csv.gz` file, compressed as it is sent), by URL as in `url`: the other two columns are
  stored beside each row.

Prints per run: the body's size, the POST's latency, seconds from the POST to all rows
enqueued (and to the first batch), rows per second, and the peak RSS of the API and the worker
(psutil, sampled every 0.1 s; VmHWM too, the kernel's own high-water mark), with their RSS at
start. Nothing is asserted: `tests/integration/api/test_list_imports.py` and
`tests/acceptance/test_import_kill.py` assert the behaviour.
"""

from __future__ import annotations

import argparse
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from app.simulator import World
from bench import _support
from tests.conftest import world_env
from tests.fixtures.http_files import chunks, serve_files
from tests.fixtures.services import Service

MAX_BYTES = 256 * 1024 * 1024
LINES_PER_PIECE = 1_000
POLL = 0.1


def address(i: int, invalid_every: int) -> str:
    return f"u{i} at bench.test" if i % invalid_every == invalid_every - 1 else f"u{i}@bench.test"


def plain_list(lines: int, invalid_every: int) -> Iterator[bytes]:
    """The list, `LINES_PER_PIECE` lines a piece."""
    for start in range(0, lines, LINES_PER_PIECE):
        stop = min(lines, start + LINES_PER_PIECE)
        yield "".join(f"{address(i, invalid_every)}\n" for i in range(start, stop)).encode()


def gzipped_csv(rows: int, invalid_every: int) -> Iterator[bytes]:
    """A three-column CSV with a header, gzipped piece by piece."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    yield packer.compress(b"name,email,company\r\n")
    for start in range(0, rows, LINES_PER_PIECE):
        stop = min(rows, start + LINES_PER_PIECE)
        text = "".join(
            f'User {i},{address(i, invalid_every)},"Company {i % 97}, Inc"\r\n'
            for i in range(start, stop)
        )
        if packed := packer.compress(text.encode()):
            yield packed
    yield packer.flush()


class RssSampler(threading.Thread):
    """The resident set size of some processes, every 0.1 s: the highest seen of each."""

    def __init__(self, services: dict[str, Service]) -> None:
        super().__init__(daemon=True)
        self.processes = {name: psutil.Process(s.pid) for name, s in services.items()}
        self.pids = {name: s.pid for name, s in services.items()}
        self.start_mb = {name: p.memory_info().rss / 2**20 for name, p in self.processes.items()}
        self.peak_mb = dict(self.start_mb)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.1):
            for name, process in self.processes.items():
                try:
                    rss = process.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peak_mb[name] = max(self.peak_mb[name], rss)

    def stop(self) -> dict[str, float]:
        """Stop sampling; the kernel's high-water mark (VmHWM) of each process, in MiB."""
        self._halt.set()
        self.join(timeout=5)
        return {name: _support.peak_rss_mb(pid) for name, pid in self.pids.items()}


@dataclass
class Figures:
    name: str
    rows: int
    body_mb: float
    post: float = 0.0
    enqueued: float | None = None
    first_batch: float | None = None
    total_records: int = 0
    error: str | None = None
    start_mb: dict[str, float] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    hwm_mb: dict[str, float] = field(default_factory=dict)

    def show(self) -> None:
        print(f"{self.name}: {self.rows:,} rows, {self.body_mb:.1f} MB as sent")
        print(f"  POST /v0/bulk answered in       {self.post:.2f} s")
        if self.enqueued is None:
            print(f"  NOT all enqueued: total_records {self.total_records:,}, error {self.error}")
        else:
            first = ""
            if self.first_batch is not None:
                first = f" (first batch counted after {self.first_batch:.2f} s)"
            print(f"  all rows enqueued after         {self.enqueued:.1f} s{first}")
            print(f"  rows per second                 {self.rows / self.enqueued:,.0f}")
        for name in self.start_mb:
            print(
                f"  {name:6} RSS: at start {self.start_mb[name]:.0f} MB, peak "
                f"{self.peak_mb[name]:.0f} MB (sampled), VmHWM {self.hwm_mb[name]:.0f} MB"
            )
        if self.error:
            print(f"  import error: {self.error}")


def wait_for_worker(url: str, worker: Service, *, within: float = 60) -> None:
    """Until the worker has registered with the queue (procrastinate_workers)."""
    deadline = time.monotonic() + within
    while True:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
        if row and row[0]:
            return
        if worker.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start:\n{worker.output()}")
        time.sleep(0.1)


def by_url(
    figures: Figures, env: dict[str, str], route: Any, path: str, *, concurrency: int
) -> None:
    with _support.scratch_database("list_import") as url, serve_files() as files:
        source = files.serve(path, route)
        run_env = {**_support.env_for(url), **env}
        api, base = _support.start_api(run_env)
        worker = _support.start_workers(run_env, 1, concurrency)[0]
        try:
            wait_for_worker(url, worker)
            sampler = RssSampler({"API": api, "worker": worker})
            sampler.start()
            try:
                with httpx.Client(base_url=base, timeout=600) as client:
                    started = time.perf_counter()
                    response = client.post(
                        "/v0/bulk", json={"input_type": "remote_url", "input": source}
                    )
                    figures.post = time.perf_counter() - started
                    assert response.status_code == 200, response.text
                    job_id = response.json()["job_id"]
                    poll(client, job_id, started, figures)
            finally:
                figures.hwm_mb = sampler.stop()
                figures.start_mb, figures.peak_mb = sampler.start_mb, sampler.peak_mb
        finally:
            worker.stop(timeout=60)
            api.stop()


def poll(client: httpx.Client, job_id: int, started: float, figures: Figures) -> None:
    """`GET /v0/bulk/{id}` until every row is counted, or the import ended short."""
    deadline = started + 3600
    while time.perf_counter() < deadline:
        status = client.get(f"/v0/bulk/{job_id}").json()
        figures.total_records = status["total_records"]
        figures.error = status.get("error")
        if figures.first_batch is None and figures.total_records:
            figures.first_batch = time.perf_counter() - started
        if figures.total_records >= figures.rows:
            figures.enqueued = time.perf_counter() - started
            return
        if figures.error:
            return
        time.sleep(POLL)


def by_upload(figures: Figures, env: dict[str, str], path: Path) -> None:
    with _support.scratch_database("list_upload") as url:
        api, base = _support.start_api({**_support.env_for(url), **env})
        try:
            sampler = RssSampler({"API": api})
            sampler.start()
            try:
                with httpx.Client(base_url=base, timeout=600) as client, path.open("rb") as file:
                    started = time.perf_counter()
                    response = client.post(
                        "/v0/bulk", files={"file": (path.name, file, "text/plain")}
                    )
                    figures.post = time.perf_counter() - started
                    assert response.status_code == 200, response.text
                    job_id = response.json()["job_id"]
                    status = client.get(f"/v0/bulk/{job_id}").json()
                figures.total_records = status["total_records"]
                figures.error = status.get("error")
                if figures.total_records >= figures.rows:
                    figures.enqueued = figures.post
            finally:
                figures.hwm_mb = sampler.stop()
                figures.start_mb, figures.peak_mb = sampler.start_mb, sampler.peak_mb
        finally:
            api.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--invalid-every", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=1, help="the worker's")
    parser.add_argument(
        "--runs", nargs="+", choices=("url", "upload", "csv"), default=["url", "upload", "csv"]
    )
    args = parser.parse_args()
    lines, every = args.lines, args.invalid_every
    _support.OUT.mkdir(parents=True, exist_ok=True)
    list_path = _support.OUT / f"list_import_{lines}.txt"
    with list_path.open("wb") as out:
        for piece in plain_list(lines, every):
            out.write(piece)
    list_mb = list_path.stat().st_size / 1e6
    csv_mb = sum(len(piece) for piece in gzipped_csv(lines, every)) / 1e6

    print(
        f"{lines:,} lines, 1 in {every} not an address; worker concurrency {args.concurrency}"
        f" ({'enqueueing only' if args.concurrency == 1 else 'verifying meanwhile'})"
    )
    with World() as world:
        env = {
            **world_env(world),
            "MXPROBE_ALLOW_PRIVATE_URLS": "true",
            "MXPROBE_BULK_MAX_BYTES": str(MAX_BYTES),
            "MXPROBE_BULK_MAX_EMAILS": str(max(lines, 1_000_000)),
        }
        for run in args.runs:
            if run == "url":
                figures = Figures("remote_url, plain list, chunked", lines, list_mb)
                route = chunks(lambda: plain_list(lines, every))
                by_url(figures, env, route, "/list.txt", concurrency=args.concurrency)
            elif run == "upload":
                figures = Figures("multipart upload, plain list", lines, list_mb)
                by_upload(figures, env, list_path)
            else:
                figures = Figures("remote_url, 3-column CSV, gzip (.csv.gz)", lines, csv_mb)
                route = chunks(lambda: gzipped_csv(lines, every), content_type="application/gzip")
                by_url(figures, env, route, "/list.csv.gz", concurrency=args.concurrency)
            figures.show()


if __name__ == "__main__":
    main()
