"""Metrics and logs as shipped: `mxprobe api`, then `mxprobe serve` with a metrics port (its
two workers started as `mxprobe worker --metrics-port P` and `P + 1`), JSON logs, a small job
of several behaviours through them. The API's `/metrics` and both workers' are scraped and
parsed as Prometheus does; the counters must move by what the job did, and the logs must say
it without the addresses."""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import queue
from app.simulator import World
from tests.conftest import world_env
from tests.fixtures.bulk import completed, fast_bulk_env
from tests.fixtures.services import Service, free_port, healthy, service_env
from tests.fixtures.waiting import wait_for

JOB: dict[str, str] = {
    "alice@normal.test": "safe",
    "nobody@normal.test": "invalid",
    "anyone@catchall.test": "risky",
    "alice@greylist.test": "safe",  # a 451 first: retried by the queue, counted once
    "alice@tarpit.test": "unknown",  # no banner within the connect timeout
    "x@nxdomain.test": "invalid",  # no SMTP at all
}
LOCAL_PARTS = ("alice@", "nobody@", "anyone@", "x@")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` that has these labels (and any others)."""
    return sum(
        value
        for (sample, have), value in samples.items()
        if sample == name and set(labels.items()) <= have
    )


def json_lines(service: Service) -> list[dict[str, Any]]:
    """The service's log, every line a JSON object (but `mxprobe serve`'s own banner)."""
    lines = []
    for text in service.output().splitlines():
        if text.strip() and not text.startswith("mxprobe: API on"):
            lines.append(json.loads(text))  # fails the test on a line that is not JSON
    return lines


def consecutive_free_ports(count: int) -> int:
    """A port p such that p, p + 1, ..., p + count - 1 are free now."""
    for _ in range(50):
        base = free_port()
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no run of free ports")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def env(world: World, fresh_database_url: str) -> dict[str, str]:
    return service_env(
        fresh_database_url,
        {**world_env(world), **fast_bulk_env(), "MXPROBE_LOG_FORMAT": "json"},
    )


@pytest.fixture
def api(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Service, str]]:
    port = free_port()
    service = Service("api", ["-m", "app.cli", "api", "--port", str(port)], env=env, logs=tmp_path)
    yield service, healthy(service, f"http://127.0.0.1:{port}", within=60)
    service.stop()


def test_both_metrics_endpoints_count_a_small_job_and_the_logs_tell_it(
    api: tuple[Service, str], env: dict[str, str], tmp_path: Path
) -> None:
    api_service, url = api
    created = httpx.post(
        f"{url}/v0/bulk", json={"input_type": "array", "input": list(JOB)}, timeout=10
    )
    assert created.status_code == 200, created.text
    job_id = created.json()["job_id"]
    single = httpx.post(f"{url}/v0/check_email", json={"to_email": "bob@normal.test"}, timeout=30)
    assert single.json()["is_reachable"] == "safe"
    again = httpx.post(f"{url}/v0/check_email", json={"to_email": "bob@normal.test"}, timeout=30)
    assert again.json()["debug"]["cache"]["hit"] is True

    # No worker yet: the job's tasks wait in the queue, and the API reads them there.
    waiting = scrape(f"{url}/metrics")
    assert get(waiting, "mxprobe_queue_tasks", queue=queue.VERIFY_QUEUE, status="todo") == len(JOB)
    assert get(waiting, "mxprobe_jobs_running") == 1
    assert get(waiting, "mxprobe_job_rows", job_id=str(job_id)) == len(JOB)
    assert get(waiting, "mxprobe_job_rows_processed_total", job_id=str(job_id)) == 0
    assert get(waiting, "mxprobe_database_up") == 1
    # The single check, asked twice: counted by the API process (and only there), the second
    # answer as a result cache hit, with no probe.
    assert get(waiting, "mxprobe_checks_total", verdict="safe", category="accept") == 2
    assert get(waiting, "mxprobe_result_cache_hits_total") == 1
    assert get(waiting, "mxprobe_smtp_round_trips_total") >= 1
    assert get(waiting, "mxprobe_dns_cache_misses_total") >= 1
    assert get(waiting, "mxprobe_probe_duration_seconds_count") == 1

    # The workers: `mxprobe serve`'s two (its own API beside ours is not asked anything), each
    # serving its metrics on a port of its own: P and P + 1.
    base = consecutive_free_ports(2)
    serve = Service(
        "serve",
        ["-m", "app.cli", "serve", "--port", str(free_port()), "--workers", "2"],
        env={**env, "MXPROBE_WORKER_METRICS_PORT": str(base)},
        logs=tmp_path,
    )
    try:
        status = completed(url, job_id)
        seen: Samples = {}
        for port in (base, base + 1):
            wait_for(
                functools.partial(answers, f"http://127.0.0.1:{port}/metrics"),
                within=30,
                what=f"a worker's metrics on port {port}",
                log=serve,
            )
        for port in (base, base + 1):
            for key, value in scrape(f"http://127.0.0.1:{port}/metrics").items():
                seen[key] = seen.get(key, 0.0) + value  # the two workers' sums
        # The API's database figures: the job is no longer running (after its read interval).
        wait_for(
            lambda: get(scrape(f"{url}/metrics"), "mxprobe_jobs_running") == 0,
            within=15,
            what="the API to see the job finished",
        )
    finally:
        assert serve.stop() == 0, serve.output()
    api_service.stop()

    summary = status["summary"]
    for verdict in ("safe", "invalid", "risky", "unknown"):
        counted = total(seen, "mxprobe_checks_total", verdict=verdict)
        assert counted == summary[f"total_{verdict}"], (verdict, counted, summary)
    assert summary == {
        f"total_{v}": list(JOB.values()).count(v) for v in ("safe", "invalid", "risky", "unknown")
    }
    assert get(seen, "mxprobe_checks_total", verdict="invalid", category="none") == 1  # nxdomain
    assert get(seen, "mxprobe_checks_total", verdict="invalid", category="hard_fail") == 1
    assert get(seen, "mxprobe_rows_stored_total") == len(JOB)
    assert get(seen, "mxprobe_result_cache_hits_total") == 0  # no address seen before
    # Every attempt is timed: the greylisted address twice.
    assert get(seen, "mxprobe_probe_duration_seconds_count") == len(JOB) + 1
    assert get(seen, "mxprobe_smtp_timeouts_total", stage="connect") >= 1  # the tarpit
    assert get(seen, "mxprobe_smtp_sessions_opened_total") >= 3  # normal, catchall, greylist
    assert get(seen, "mxprobe_smtp_round_trips_total") >= 4
    assert get(seen, "mxprobe_dns_cache_misses_total") >= len(JOB)
    assert get(seen, "mxprobe_dns_cache_hits_total") >= 1  # greylist.test's MX, the 2nd time
    assert ("mxprobe_smtp_connect_refused_total", frozenset()) in seen
    assert get(seen, "process_resident_memory_bytes") > 0

    worker_lines, api_lines = json_lines(serve), json_lines(api_service)
    verified = [line for line in worker_lines if line["message"] == "verified"]
    assert sorted(line["row"] for line in verified) == list(range(len(JOB)))
    assert {line["job_id"] for line in verified} == {job_id}
    by_domain = {line["domain"]: line for line in verified}
    assert by_domain["normal.test"]["mx_group"] == "mx.normal.test"
    assert by_domain["normal.test"]["category"] in ("accept", "hard_fail")  # alice and nobody
    assert by_domain["normal.test"]["reply_code"] in (250, 550)
    assert by_domain["catchall.test"]["verdict"] == "risky"
    assert by_domain["nxdomain.test"]["reply_code"] is None
    assert all(isinstance(line["duration_ms"], int) for line in verified)
    # (by the worker that stored the last row; both, should both store last rows at once)
    assert {line["job_id"] for line in worker_lines if line["message"] == "job finished"} == {
        job_id
    }
    single_lines = [line for line in api_lines if line["message"] == "verified"]
    assert [
        (line["domain"], line["verdict"], line["job_id"], line["cached"]) for line in single_lines
    ] == [("normal.test", "safe", None, False), ("normal.test", "safe", None, True)]
    assert not any(line["cached"] for line in verified)
    assert [line["job_id"] for line in api_lines if line["message"] == "job submitted"] == [job_id]
    logs = serve.output() + api_service.output()
    assert not [part for part in LOCAL_PARTS if part in logs], "an address reached the logs"
    assert "bob@" not in logs
