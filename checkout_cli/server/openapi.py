"""/openapi.json, generated from the endpoint registry (never a second, hand-written schema)."""

from __future__ import annotations

from typing import Any

from checkout_cli import __version__
from checkout_cli.endpoints import ENDPOINTS, HTTP

API_VERSION = "1"

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
            },
        },
    },
}


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    params = []
    for name, prop in schema["properties"].items():
        inner = next((s for s in prop.get("anyOf", [prop]) if s.get("type") != "null"), prop)
        if inner.get("type") in ("object", "array"):
            continue
        params.append(
            {"name": name, "in": "query", "required": name in schema["required"], "schema": inner}
        )
    return params


def openapi(project_id: str) -> dict[str, Any]:
    error_response = {"description": "failure", "content": {"application/json": {"schema": _ERROR}}}
    paths: dict[str, Any] = {}
    for endpoint in ENDPOINTS.values():
        if HTTP not in endpoint.faces:  # local-only: never served, so not described
            continue
        schema = endpoint.request.json_schema()
        ok = {
            "description": "success",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["success", "result"],
                        "properties": {"success": {"const": True}, "result": {"type": "object"}},
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
            "responses": {"200": ok, "4XX": error_response},
        }
        item = {"post": operation}
        if endpoint.reads_only:
            item["get"] = {k: v for k, v in operation.items() if k != "requestBody"} | {
                "operationId": f"{endpoint.tool_name}_get",
                "parameters": _query_parameters(schema),
            }
        paths[f"/iapi/project/{project_id}/{endpoint.service}/{endpoint.name}"] = item
    return {
        "openapi": "3.0.3",
        "info": {"title": "checkout-cli API", "version": f"{API_VERSION} ({__version__})"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
