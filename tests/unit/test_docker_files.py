"""The Dockerfile and docker-compose.yml, checked without Docker.

docker-compose.yml is validated against the Compose Specification's JSON schema, vendored in
tests/data/compose-spec.json (github.com/compose-spec/compose-spec, schema/compose-spec.json at
commit 170098ba07d9, Apache-2.0): no network at test time. Where Docker's compose plugin is
installed, `docker compose config` checks the file as well.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import typer.main
import yaml

from app.cli.main import cli
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return out


DOCKERFILE = instructions((ROOT / "Dockerfile").read_text())
FINAL = DOCKERFILE[max(i for i, (kw, _) in enumerate(DOCKERFILE) if kw == "FROM") :]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def cli_commands() -> set[str]:
    group = typer.main.get_group(cli)
    return set(group.commands)


def test_instructions_joins_continuations_and_drops_comments() -> None:
    text = "# c\nFROM x AS b\nRUN a \\\n    && b\n\nUSER  u\n"
    assert instructions(text) == [("FROM", "x AS b"), ("RUN", "a && b"), ("USER", "u")]


def test_the_image_is_built_in_stages() -> None:
    stages = [args for kw, args in DOCKERFILE if kw == "FROM"]
    assert len(stages) >= 2
    build_stage = stages[0].split()[-1]
    assert stages[0].split()[-2].upper() == "AS"
    assert any(kw == "COPY" and f"--from={build_stage}" in args for kw, args in FINAL)
    # the final stage installs nothing: it only copies the build stage's virtualenv
    assert not any(kw == "RUN" and "pip " in args for kw, args in FINAL)


def test_the_image_installs_the_lock_and_nothing_else() -> None:
    runs = [args for kw, args in DOCKERFILE if kw == "RUN"]
    pip_installs = [cmd.strip() for run in runs for cmd in run.split("&&") if "pip install" in cmd]
    from_lock = [c for c in pip_installs if "--require-hashes" in c.split()]
    assert len(from_lock) == 1
    assert "-r requirements.txt" in from_lock[0]
    # every other install resolves nothing: the project itself, its dependencies already there
    assert all("--no-deps" in c.split() for c in pip_installs if c not in from_lock)
    assert any(kw == "COPY" and args.split()[0] == "requirements.txt" for kw, args in DOCKERFILE)


def test_the_build_context_keeps_what_the_image_copies() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        src
        for kw, args in DOCKERFILE
        if kw == "COPY" and not args.startswith("--from")
        for src in args.split()[:-1]
    ]
    assert "requirements.txt" in sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert not [pat for pat in ignored if fnmatch.fnmatch(src, pat)], src


def test_the_image_runs_as_an_unprivileged_user() -> None:
    users = [args.split(":")[0] for kw, args in FINAL if kw == "USER"]
    assert users
    assert users[-1] not in {"root", "0"}
    # and it is the last word: nothing after it switches back
    last_user = max(i for i, (kw, _) in enumerate(FINAL) if kw == "USER")
    assert all(kw != "RUN" for kw, _ in FINAL[last_user:])


def test_the_image_checks_its_health_on_healthz() -> None:
    (check,) = [args for kw, args in FINAL if kw == "HEALTHCHECK"]
    exposed = {args for kw, args in FINAL if kw == "EXPOSE"}
    assert exposed == {"8080"}
    command = json.loads(check[check.index("CMD") + 3 :])
    assert command[0] == "python"  # the slim image has no curl
    assert "http://127.0.0.1:8080/healthz" in command[-1]
    # what it serves by default is the API on that port
    (cmd,) = [json.loads(args) for kw, args in FINAL if kw == "CMD"]
    assert cmd[:2] == ["mxprobe", "api"]
    assert cmd[1] in cli_commands()
    assert cmd[cmd.index("--port") + 1] == "8080"


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []
    if shutil.which("docker") and _docker_compose_available():
        subprocess.run(
            ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
            check=True,
            timeout=60,
        )


def _docker_compose_available() -> bool:
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False, timeout=30
    )
    return probe.returncode == 0


def test_the_schema_rejects_what_compose_rejects() -> None:
    """The vendored schema is the real one, not a permissive stand-in."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    broken = compose()
    # (new objects: the services share the anchor's through the YAML merge key)
    broken["services"]["api"]["depends_on"] = {"migrate": {"condition": "service_finished"}}
    broken["services"]["worker"] = {**broken["services"]["worker"], "restart_policy": "always"}
    errors = {tuple(e.absolute_path) for e in validator.iter_errors(broken)}
    assert errors == {("services", "api", "depends_on"), ("services", "worker")}


def test_compose_migrates_once_before_the_api_and_the_workers() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker", "prometheus"}
    assert "healthcheck" in services["postgres"]

    migrate = services["migrate"]
    assert migrate["command"] == ["mxprobe", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}

    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
    assert services["worker"]["command"] == ["mxprobe", "worker"]
    assert services["api"]["command"][:2] == ["mxprobe", "api"]
    assert "replicas" in services["worker"]["deploy"]
    # all three run the image built from this Dockerfile, with commands the CLI has
    for name in ("migrate", "api", "worker"):
        assert services[name]["build"] == "."
        assert services[name]["command"][1] in cli_commands(), name


def test_compose_sets_only_settings_that_exist() -> None:
    environment: dict[str, str] = compose()["x-mxprobe"]["environment"]
    known = {f"MXPROBE_{field}".upper() for field in Settings.model_fields} | {"DATABASE_URL"}
    assert set(environment) - known == set()
