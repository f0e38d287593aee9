"""The README's start command: `mxprobe serve` with no DATABASE_URL does everything."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.simulator import World
from tests.conftest import world_env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(world: World, data_dir: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MXPROBE_") and k != "DATABASE_URL"
    }
    env.update(world_env(world))
    env["MXPROBE_DATA_DIR"] = str(data_dir)
    env["MXPROBE_GREYLIST_RETRY_DELAY"] = "1"
    return env


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], *, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the service exited while starting"
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service never became healthy")


def _wait_complete(base: str, job_id: int, *, within: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = httpx.get(f"{base}/v0/bulk/{job_id}", timeout=5).json()
        if status["job_status"] == "complete":
            return dict(status)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never completed")


def _postmaster_running(data_dir: Path) -> bool:
    return (data_dir / "pgdata" / "postmaster.pid").exists()


def test_serve_starts_postgres_api_and_workers_then_stops_cleanly(
    world: World, tmp_path: Path
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "1"],
        env=_env(world, tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(base, proc)
        assert _postmaster_running(tmp_path)

        check = httpx.post(f"{base}/v0/check_email", json={"to_email": "alice@normal.test"})
        assert check.json()["is_reachable"] == "safe"

        submitted = httpx.post(
            f"{base}/v0/bulk",
            json={"input_type": "array", "input": ["alice@normal.test", "nobody@normal.test"]},
        )
        status = _wait_complete(base, submitted.json()["job_id"])
        assert status["summary"] == {
            "total_safe": 1,
            "total_invalid": 1,
            "total_risky": 0,
            "total_unknown": 0,
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)

    assert code == 0
    assert not _postmaster_running(tmp_path), "the embedded PostgreSQL was left running"


def test_api_and_worker_started_separately_share_one_embedded_server(
    world: World, tmp_path: Path
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(world, tmp_path)
    cli = [sys.executable, "-m", "app.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    api = subprocess.Popen(
        [*cli, "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [*cli, "worker", "--concurrency", "4"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(base, api)
        submitted = httpx.post(
            f"{base}/v0/bulk", json={"input_type": "array", "input": ["bob@normal.test"]}
        )
        status = _wait_complete(base, submitted.json()["job_id"])
        assert status["total_processed"] == 1
    finally:
        for proc in (worker, api):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    assert not _postmaster_running(tmp_path), "the last process out did not stop PostgreSQL"


def test_a_worker_on_an_unmigrated_database_says_what_to_do(world: World, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        env=_env(world, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "mxprobe migrate" in done.stdout
    assert not _postmaster_running(tmp_path)
