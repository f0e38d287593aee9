"""Downloading a job of 1,000,000 rows: seconds, and the API process's peak RSS.

    .venv/bin/python -m bench.bulk_download [--rows 1000000]

A scratch database gets a complete job of `rows` stored results (about 1.2 kB of JSON each,
inserted by SQL); the API runs as its own process (uvicorn); this script streams
`?format=csv`, then the JSON download, counting bytes, and reads the API's peak resident set
(VmHWM) before and after each.
"""

from __future__ import annotations

import argparse
import time

import httpx

from bench import _support


def download(base: str, path: str, pid: int) -> None:
    rss_before = _support.rss_mb(pid)
    started = time.perf_counter()
    size = lines = 0
    with httpx.stream("GET", f"{base}{path}", timeout=600) as response:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    peak = _support.peak_rss_mb(pid)
    print(
        f"  GET {path}: {elapsed:.1f} s, {size / 1e6:.0f} MB ({size / 1e6 / elapsed:.0f} MB/s),"
        f" {lines:,} lines; API RSS {rss_before:.0f} MB before, peak {peak:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with _support.scratch_database("download") as url:
        job_id = _support.create_job(url, args.rows)
        started = time.perf_counter()
        _support.fill_results(url, job_id, 0, args.rows)
        print(f"stored {args.rows:,} results by SQL in {time.perf_counter() - started:.0f} s")
        api, base = _support.start_api(_support.env_for(url))
        try:
            print(f"job {job_id}: {httpx.get(f'{base}/v0/bulk/{job_id}').json()['job_status']}")
            download(base, f"/v0/bulk/{job_id}/download?format=csv", api.pid)
            download(base, f"/v0/bulk/{job_id}/download", api.pid)
        finally:
            api.stop()


if __name__ == "__main__":
    main()
