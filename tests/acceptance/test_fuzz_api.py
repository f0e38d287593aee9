"""schemathesis over the served OpenAPI document: `mxprobe serve` as shipped (API and workers),
on a database of its own, pointed at the simulated world (loopback only). Every operation gets
generated valid and invalid requests; none may answer 5xx, and every response must be one the
document describes (status, content type, body schema)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.simulator import World
from tests.conftest import world_env
from tests.fixtures.services import serving

EXAMPLES = 40
"""Per operation and mode; bounded, so the run takes seconds and not minutes."""

SENT: list[int] = []
"""The status of every response, for the figures printed when the module ends."""


@pytest.fixture(scope="module")
def served(
    database_url: str,
    template_database: str,
    session_world: World,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    env = {**world_env(session_world), "MXPROBE_WORKER_CONCURRENCY": "4"}
    logs = tmp_path_factory.mktemp("fuzz")
    with serving(database_url, template_database, env=env, logs=logs) as (service, base):
        yield base
        # Still answering after everything it was sent, and nothing blew up inside.
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        assert "Traceback" not in service.output(), service.output()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        server_errors = sum(1 for status in SENT if status >= 500)
        reporter.write_line(
            f"\nschemathesis: {len(SENT)} requests, {server_errors} answered 5xx, "
            f"statuses {sorted(set(SENT))}"
        )


EXCLUDED = {
    # A schema-valid list may still hold no address (`"input": "0"`), or its URL not answer:
    # that is a 400 / 502 no JSON schema can foresee. Every other check holds.
    ("POST", "/v0/bulk"): [positive_data_acceptance],
}

OPERATIONS = [
    ("POST", "/v0/check_email"),
    ("POST", "/v0/bulk"),
    ("GET", "/v0/bulk/{job_id}"),
    ("DELETE", "/v0/bulk/{job_id}"),
    ("GET", "/v0/bulk/{job_id}/download"),
    ("GET", "/v0/bulk/{job_id}/result"),
    ("GET", "/v0/bulk/{job_id}/results"),
    ("GET", "/v0/bulk"),
    ("POST", "/v1/check_email"),
    ("POST", "/v1/bulk"),
    ("GET", "/v1/bulk/{job_id}"),
    ("GET", "/v1/bulk/{job_id}/results"),
    ("GET", "/healthz"),
    ("GET", "/version"),
]


@pytest.fixture(scope="module")
def api_schema(served: str) -> Any:
    return schemathesis.openapi.from_url(f"{served}/openapi.json")


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    documented = {
        (result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()
    }
    assert documented == set(OPERATIONS)


CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for method, path in OPERATIONS
    for mode in GenerationMode
    # Nothing to get wrong in a request without parameters or body.
    if mode is GenerationMode.POSITIVE or path not in ("/healthz", "/version")
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_server_error_and_every_response_documented(
    api_schema: Any, served: str, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        # A generated URL may name a public address: nothing leaves this machine, so lists
        # by URL are left to tests/integration/api/test_list_imports.py (a loopback server).
        assume(not (isinstance(case.body, dict) and case.body.get("input_type") == "remote_url"))
        # Likewise a webhook's URL, which a worker would call: webhooks are tested against a
        # loopback receiver (tests/integration/webhooks), their validation in test_bad_input.
        assume(not (isinstance(case.body, dict) and case.body.get("webhook")))
        response = case.call_and_validate(
            base_url=served, timeout=30, excluded_checks=EXCLUDED.get((method, path), [])
        )
        SENT.append(response.status_code)

    call()
