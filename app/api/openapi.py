"""The served OpenAPI document, corrected in one place to what the API really does.

FastAPI describes every validation error as a 422 with its own error shape; this API answers
400 with `{"error": ...}`. It cannot know of the body limits (413), the body deadline (408) or
the header secret (401); they are added here, from the same settings that enforce them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from app.api.errors import ErrorBody
from app.api.limits import BodyLimits
from app.api.secret import HEADER

_ERROR_REF = {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}
_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
_SECURITY_SCHEME = "HeaderSecret"


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


def corrected(
    schema: dict[str, Any],
    *,
    limits: BodyLimits,
    body_timeout: float,
    secret_required: bool,
    open_paths: frozenset[str],
    proxy_schema: dict[str, Any] | None = None,
    bodies: Sequence[type[BaseModel]] = (),
) -> dict[str, Any]:
    """`schema` (FastAPI's document), corrected in place and returned. `proxy_schema`: the
    request bodies' `proxy` as this server accepts it (`v0.proxies.openapi_schema`).
    `bodies`: models of request bodies a route parses itself (FastAPI cannot see them)."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in bodies:
        described = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(described.pop("$defs", {}))
        schemas[model.__name__] = described
    if proxy_schema is not None:
        for component in schemas.values():
            if "proxy" in component.get("properties", {}):
                component["properties"]["proxy"] = proxy_schema
    for name in _FASTAPI_ERRORS:
        schemas.pop(name, None)
    schemas.setdefault(ErrorBody.__name__, ErrorBody.model_json_schema())
    if secret_required:
        schema["components"]["securitySchemes"] = {
            _SECURITY_SCHEME: {"type": "apiKey", "in": "header", "name": HEADER}
        }
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = _error("Invalid request: the error says what is wrong")
            if "requestBody" in operation:
                limit, _ = limits.of(method.upper(), path)
                too_large = f"the request body is over {limit} bytes"
                if "413" in responses:  # the route's own reason (bulk: too many emails)
                    too_large = f"{responses['413']['description']}, or {too_large}"
                responses["413"] = _error(too_large[0].upper() + too_large[1:])
                responses["408"] = _error(
                    f"The request body did not arrive within {body_timeout:g} s"
                )
            if secret_required and path not in open_paths:
                operation["security"] = [{_SECURITY_SCHEME: []}]
                responses["401"] = _error(f"Header {HEADER} missing or wrong")
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:  # every error is {"error": ...}
                    media = response.setdefault("content", {}).setdefault("application/json", {})
                    media["schema"] = _ERROR_REF
            operation["responses"] = dict(sorted(responses.items()))
    for item in schema.get("webhooks", {}).values():
        for operation in item.values():  # what the receiver answers: FastAPI's 422 is not it
            operation["responses"] = {"2XX": {"description": "Received; anything else is retried"}}
    return schema
