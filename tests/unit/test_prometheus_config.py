"""deploy/prometheus.yml and deploy/alerts.yml agree with docker-compose.yml and with the
metrics the code exposes (promtool is not needed: the names and ports are what drift)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

from app import metrics  # the process metrics, registered
from app.api.metrics import DatabaseFigures

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> Any:
    return yaml.safe_load((ROOT / name).read_text())


def exposed_names() -> set[str]:
    """Every sample name the API or a worker may expose."""
    families = [*REGISTRY.collect(), *DatabaseFigures().collect()]
    names = {family.name for family in families}
    for family in families:
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
        names |= {family.name + s for s in suffixes.get(family.type, [])}
    return names


def test_prometheus_scrapes_the_ports_compose_serves_metrics_on() -> None:
    compose = load("docker-compose.yml")
    config = load("deploy/prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    environment = compose["x-mxprobe"]["environment"]
    (workers,) = jobs["mxprobe-worker"]["dns_sd_configs"]
    assert workers["names"] == ["worker"]
    assert workers["port"] == int(environment["MXPROBE_WORKER_METRICS_PORT"])
    assert environment["MXPROBE_WORKER_METRICS_HOST"] == "0.0.0.0"

    api = compose["services"]["api"]["command"]
    port = api[api.index("--port") + 1]
    assert jobs["mxprobe-api"]["static_configs"] == [{"targets": [f"api:{port}"]}]

    mounts = {
        volume.split(":")[1]: volume.split(":")[0]
        for volume in compose["services"]["prometheus"]["volumes"]
    }
    for rules in config["rule_files"]:
        assert (ROOT / mounts[rules]).is_file()
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus.yml"


def test_the_alerts_use_only_metrics_that_exist() -> None:
    assert metrics.OBSERVER is not None
    rules = [rule for group in load("deploy/alerts.yml")["groups"] for rule in group["rules"]]
    used = {name for rule in rules for name in re.findall(r"\bmxprobe_\w+", rule["expr"])}

    assert used
    assert used <= exposed_names()
