"""`mxprobe check` as a person runs it: a subprocess, the system resolver pointed at the world."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from app.simulator import World
from tests.conftest import world_env


def mxprobe(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MXPROBE_")}
    env.update(world_env(world))
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_prints_a_readable_verdict_per_address(world: World) -> None:
    done = mxprobe(world, "check", "alice@normal.test", "nobody@normal.test", "x@catchall.test")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["safe", "alice@normal.test"]
    assert lines[1].split()[:2] == ["invalid", "nobody@normal.test"]
    assert lines[2].split()[:2] == ["risky", "x@catchall.test"]
    assert "550" in lines[1]
    assert "is_catch_all" in lines[2]


def test_check_json_is_reachers_output(world: World) -> None:
    done = mxprobe(world, "check", "--json", "alice@disabled.test")

    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["input"] == "alice@disabled.test"
    assert output["is_reachable"] == "invalid"
    assert output["smtp"]["is_disabled"] is True
    assert world.total_data_commands() == 0
