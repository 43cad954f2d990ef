"""/openapi.json, generated from the endpoint registry (never a second, hand-written schema).

OpenAPI 3.1: its schemas are JSON Schema 2020-12, the dialect pydantic writes the request
models' schemas in (3.0's own dialect has no ``const`` or ``null`` type)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from checkout_cli import __version__
from checkout_cli.endpoints import ENDPOINTS, HTTP

API_VERSION = "1"
# The request models' shared parts (Customer, Address, …) and the result models (Checkout,
# Cart, …, with their parts) are components, referred to by name.
_REF = "#/components/schemas/{model}"

_ERROR = {
    "type": "object",
    "required": ["success", "error_object"],
    "properties": {
        "success": {"const": False},
        "error_object": {
            "type": "object",
            "required": ["type", "code", "message"],
            "properties": {
                "type": {"type": "string"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
                "recovery": {"type": "string"},
                "errors": {
                    "description": "every bad field of a refused request; the first is also "
                    "the error's own field, code and message",
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "code", "message"],
                        "properties": {
                            "field": {"type": "string"},
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}


# The failures every served operation can answer with (errors.py's classes), by status.
_FAILURES = {
    "401": "no token, or one not valid or revoked (auth)",
    "403": "the token's scope is too low, or the call is local-only (forbidden)",
    "404": "an unknown checkout, cart, product, order or project (not_found)",
    "409": "the object's state refuses it, or an Idempotency-Key was reused (conflict)",
    "413": "the body is over 1 MiB (validation, body_too_large)",
    "422": "a refused value or body, naming every bad field (validation)",
    "503": "the store is busy or a provider did not answer; safe to retry (unavailable)",
}
_PAYMENT_FAILURE = "the payment provider refused the payment or the refund (payment)"


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    params = []
    for name, prop in schema["properties"].items():
        inner = next((s for s in prop.get("anyOf", [prop]) if s.get("type") != "null"), prop)
        if inner.get("type") in ("object", "array"):
            continue
        params.append(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", []),
                "schema": inner,
            }
        )
    return params


def _add_components(components: dict[str, Any], defs: dict[str, Any]) -> None:
    """Add a model's definitions; one name is one schema (a request's ``Customer`` and a
    result's part may never share a name with different shapes)."""
    for name, schema in defs.items():
        if components.setdefault(name, schema) != schema:
            raise RuntimeError(f"two different schemas are both named {name!r}")


def result_schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """A result model as a component (its parts too); the reference to it."""
    schema = model.model_json_schema(ref_template=_REF)
    _add_components(components, schema.pop("$defs", {}))
    _add_components(components, {model.__name__: schema})
    return {"$ref": _REF.format(model=model.__name__)}


def openapi(project_id: str) -> dict[str, Any]:
    error_schema = {"$ref": "#/components/schemas/Error"}

    def failure(description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": error_schema}},
        }

    paths: dict[str, Any] = {}
    components: dict[str, Any] = {"Error": _ERROR}
    for endpoint in ENDPOINTS.values():
        if HTTP not in endpoint.faces:  # local-only: never served, so not described
            continue
        schema = endpoint.request.model_json_schema(ref_template=_REF)
        _add_components(components, schema.pop("$defs", {}))
        result = result_schema(endpoint.result_model, components)
        ok = {
            "description": "success",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["success", "result"],
                        "properties": {"success": {"const": True}, "result": result},
                    }
                }
            },
        }
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "description": f"Needs a token with scope {endpoint.scope} (or above).",
            "x-scope": endpoint.scope,
            "operationId": endpoint.tool_name,
            "tags": [endpoint.service],
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": {
                "200": ok,
                **{status: failure(text) for status, text in _FAILURES.items()},
                **({"402": failure(_PAYMENT_FAILURE)} if endpoint.calls_out else {}),
            },
        }
        item = {"post": operation}
        if endpoint.reads_only:
            item["get"] = {k: v for k, v in operation.items() if k != "requestBody"} | {
                "operationId": f"{endpoint.tool_name}_get",
                "parameters": _query_parameters(schema),
            }
        paths[f"/iapi/project/{project_id}/{endpoint.service}/{endpoint.name}"] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "checkout-cli API", "version": f"{API_VERSION} ({__version__})"},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
