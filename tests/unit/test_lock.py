"""The lock (requirements-dev.txt, requirements.txt) against pyproject.toml and the venv.

`make lock` writes both files with pip-compile; `make install` (hence `make serve`, `make test`
and CI) installs requirements-dev.txt, the Dockerfile requirements.txt. These tests fail when
someone edits pyproject.toml and forgets `make lock`, or when the running venv is not the lock.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])
# What pip-compile writes under a package the project asks for directly.
DIRECT = f"{PROJECT} (pyproject.toml)"
BUILD = f"{PROJECT} (pyproject.toml::build-system.requires)"


@dataclass
class Pin:
    version: Version
    hashes: int = 0
    via: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[NormalizedName, Pin]:
    """The pins of a pip-compile output: `name==version \\`, its `--hash=` lines, then its
    `# via` annotation (on the same line, or one requirer per line after `# via`)."""
    pins: dict[NormalizedName, Pin] = {}
    current: Pin | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or (raw == line and line.startswith("#")):
            continue  # blank, or a comment at column 0 (the header)
        if raw == line:  # a requirement starts at column 0
            req = Requirement(line.removesuffix("\\").strip())
            (spec,) = req.specifier  # pip-compile writes exactly one `==`
            assert spec.operator == "==", raw
            assert canonicalize_name(req.name) not in pins, f"{req.name} pinned twice"
            current = pins[canonicalize_name(req.name)] = Pin(Version(spec.version))
        elif current is not None and line.startswith("--hash="):
            current.hashes += 1
        elif current is not None and line.startswith("#"):
            text = line.removeprefix("#").strip()
            text = text.removeprefix("via").strip()
            if text:
                current.via.append(text)
    return pins


def wanted(extra: str | None) -> dict[NormalizedName, Requirement]:
    """pyproject.toml's own requirements (the runtime ones, plus an extra's), for this Python."""
    lines = list(PYPROJECT["project"]["dependencies"])
    if extra:
        lines += PYPROJECT["project"]["optional-dependencies"][extra]
    reqs = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): r for r in reqs if r.marker is None or r.marker.evaluate()}


def build_requires() -> dict[NormalizedName, Requirement]:
    reqs = [Requirement(line) for line in PYPROJECT["build-system"]["requires"]]
    return {canonicalize_name(r.name): r for r in reqs}


LOCKS = {
    # file: the extra it adds to pyproject's runtime requirements
    "requirements-dev.txt": "dev",
    "requirements.txt": None,
}


@pytest.fixture(scope="module", params=sorted(LOCKS))
def lock(request: pytest.FixtureRequest) -> tuple[str, dict[NormalizedName, Pin]]:
    name: str = request.param
    return name, read_lock(ROOT / name)


def test_the_lock_pins_every_requirement_of_pyproject_within_its_range(
    lock: tuple[str, dict[NormalizedName, Pin]],
) -> None:
    name, pins = lock
    required = wanted(LOCKS[name]) | build_requires()
    missing = sorted(set(required) - set(pins))
    assert not missing, f"{name} lacks {missing}: run `make lock`"
    outside = {
        dep: f"{pins[dep].version} not in {req.specifier}"
        for dep, req in required.items()
        if not req.specifier.contains(pins[dep].version, prereleases=True)
    }
    assert not outside, f"{name} pins outside pyproject.toml's ranges: {outside}; `make lock`"


def test_the_lock_asks_for_nothing_pyproject_no_longer_asks_for(
    lock: tuple[str, dict[NormalizedName, Pin]],
) -> None:
    """A dependency removed from pyproject.toml leaves the lock too: what pip-compile marked
    as the project's own is exactly pyproject's list (with the build backend)."""
    name, pins = lock
    direct = {dep for dep, pin in pins.items() if DIRECT in pin.via}
    build = {dep for dep, pin in pins.items() if BUILD in pin.via}
    differ = sorted(direct ^ set(wanted(LOCKS[name])))
    assert not differ, f"{name} and pyproject.toml disagree on {differ}: run `make lock`"
    assert build == set(build_requires())


def test_every_pin_has_hashes(lock: tuple[str, dict[NormalizedName, Pin]]) -> None:
    name, pins = lock
    assert pins
    assert not [dep for dep, pin in pins.items() if pin.hashes == 0], name


def test_the_image_lock_is_the_runtime_part_of_the_dev_lock() -> None:
    """One resolution: the Docker image runs the versions that `make test` tested."""
    dev = read_lock(ROOT / "requirements-dev.txt")
    runtime = read_lock(ROOT / "requirements.txt")
    assert set(runtime) <= set(dev)
    differ = {dep: (pin.version, dev[dep].version) for dep, pin in runtime.items()}
    assert {dep: v for dep, v in differ.items() if v[0] != v[1]} == {}


def test_the_running_venv_is_the_lock() -> None:
    """What `make install` gave this interpreter: each locked distribution at its version
    (as `pip freeze` would show; extra packages installed by hand are not checked)."""
    pins = read_lock(ROOT / "requirements-dev.txt")
    wrong = {}
    for dep, pin in pins.items():
        try:
            version = Version(importlib.metadata.version(dep))
        except importlib.metadata.PackageNotFoundError:
            wrong[dep] = f"locked {pin.version}, not installed"
            continue
        if version != pin.version:
            wrong[dep] = f"locked {pin.version}, installed {version}"
    assert not wrong, f"the venv is not the lock: {wrong}; `make install`"


def test_read_lock_reads_pip_compile_output(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text(
        "#\n# header\n#\n"
        "Foo_Bar==1.2 \\\n"
        "    --hash=sha256:aa \\\n"
        "    --hash=sha256:bb\n"
        "    # via mxprobe (pyproject.toml)\n"
        "baz==3.0.post1 \\\n"
        "    --hash=sha256:cc\n"
        "    # via\n"
        "    #   -c requirements-dev.txt\n"
        "    #   foo-bar\n"
        "\n# The following packages are considered to be unsafe in a requirements file:\n"
        "setuptools==80.0 \\\n"
        "    --hash=sha256:dd\n"
        "    # via mxprobe (pyproject.toml::build-system.requires)\n"
    )
    pins = read_lock(lock)
    assert pins == {
        "foo-bar": Pin(Version("1.2"), 2, [DIRECT]),
        "baz": Pin(Version("3.0.post1"), 1, ["-c requirements-dev.txt", "foo-bar"]),
        "setuptools": Pin(Version("80.0"), 1, [BUILD]),
    }
