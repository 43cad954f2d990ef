"""Result models: every endpoint declares what it answers, the suite checks every answer against
it, and /openapi.json publishes it as the 200 response's ``result``."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jsonschema
import pytest

from checkout_cli import endpoints, requests, results
from checkout_cli.backends.local import CHECK_RESULTS
from checkout_cli.endpoints import ENDPOINTS, HTTP, Endpoint
from checkout_cli.server.openapi import openapi
from tests.conftest import ready_checkout


def _spec() -> dict[str, Any]:
    return openapi("shop")


def _result_ref(spec: dict[str, Any], service: str, name: str) -> str:
    ok = spec["paths"][f"/iapi/project/shop/{service}/{name}"]["post"]["responses"]["200"]
    schema = ok["content"]["application/json"]["schema"]
    assert schema["required"] == ["success", "result"]
    ref: str = schema["properties"]["result"]["$ref"]
    return ref


def _component(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    prefix = "#/components/schemas/"
    assert ref.startswith(prefix)
    found: dict[str, Any] = spec["components"]["schemas"][ref.removeprefix(prefix)]
    return found


def _validate(spec: dict[str, Any], ref: str, answer: dict[str, Any]) -> None:
    """``answer`` against the published schema, its references resolved in the document."""
    jsonschema.Draft202012Validator({**spec, "$ref": ref}).validate(answer)


def test_every_endpoint_declares_a_result_model_of_its_own_kind():
    assert len(ENDPOINTS) == 62
    for endpoint in ENDPOINTS.values():
        assert issubclass(endpoint.result_model, results.Result), endpoint.name
        assert endpoint.result_model.model_config.get("extra") == "forbid"
        assert endpoint.result_model.model_json_schema()["type"] == "object"


def test_an_endpoint_without_a_result_model_cannot_be_declared():
    with pytest.raises(TypeError, match="result"):
        Endpoint(  # type: ignore[call-arg]
            "checkout-admin",
            "get-nothing",
            "Nothing.",
            requests.NoFields,
            "admin:get_store",
            scope=endpoints.READ,
        )


def test_the_suite_checks_every_answer():
    assert os.environ[CHECK_RESULTS] == "1"  # set by conftest, inherited by subprocesses


def test_published_results_name_their_real_fields():
    spec = _spec()
    checkout = _component(spec, _result_ref(spec, "checkout-flow", "get-checkout-status"))
    assert {"checkout_token", "status", "items", "totals", "payment", "order"} <= set(
        checkout["properties"]
    )
    assert "totals" in checkout["required"] and "items" in checkout["required"]
    assert checkout["properties"]["status"]["enum"] == list(requests.CHECKOUT_STATES)
    totals = _component(spec, checkout["properties"]["totals"]["$ref"])
    assert totals["properties"]["total_cents"] == {"title": "Total Cents", "type": "integer"}
    line = _component(spec, checkout["properties"]["items"]["items"]["$ref"])
    assert {"line_id", "product_sku", "quantity", "unit_price_cents", "meta"} <= set(
        line["properties"]
    )
    assert line["properties"]["unit_price_cents"]["type"] == "integer"  # minor units
    cart = _component(spec, _result_ref(spec, "shopping-cart", "get-cart"))
    assert cart["required"] == [
        "cart_token",
        "status",
        "currency",
        "items",
        "subtotal_cents",
        "visitor_id",
    ]
    listed = _component(spec, _result_ref(spec, "product-catalog", "list-products"))
    assert {"products", "total", "limit", "offset"} <= set(listed["required"])
    # The request's Customer and the result's customer are both components, by their own names.
    assert "Customer" in spec["components"]["schemas"]
    assert checkout["properties"]["customer"]["anyOf"][0]["$ref"].endswith("/CustomerDetails")


def test_real_answers_match_the_published_schema(backend):
    spec = _spec()
    token = ready_checkout(backend)
    status = backend.call("checkout-flow", "get-checkout-status", {"checkout_token": token})
    _validate(spec, _result_ref(spec, "checkout-flow", "get-checkout-status"), status)
    cart = backend.call("shopping-cart", "get-cart", {"cart_token": status["cart_token"]})
    _validate(spec, _result_ref(spec, "shopping-cart", "get-cart"), cart)
    drifted = {**status, "totals": {**status["totals"], "total_cents": "12.50"}}
    with pytest.raises(jsonschema.ValidationError):
        _validate(spec, _result_ref(spec, "checkout-flow", "get-checkout-status"), drifted)


class _StoreWithoutItsId(results.Result):
    project_id: str
    schema_version: int


def _drifted(monkeypatch: pytest.MonkeyPatch) -> None:
    key = ("checkout-admin", "get-store")
    monkeypatch.setattr(results, "StoreWithoutItsId", _StoreWithoutItsId, raising=False)
    monkeypatch.setitem(
        ENDPOINTS, key, dataclasses.replace(ENDPOINTS[key], result="StoreWithoutItsId")
    )


def test_an_answer_its_model_does_not_describe_fails_loudly(backend, monkeypatch):
    _drifted(monkeypatch)
    named = r"(?s)checkout-admin/get-store .*store_id.*extra_forbidden"  # the endpoint, the field
    with pytest.raises(AssertionError, match=named):
        backend.call("checkout-admin", "get-store")


def test_without_the_check_an_answer_is_not_checked(backend, monkeypatch):
    _drifted(monkeypatch)
    monkeypatch.delenv(CHECK_RESULTS)
    assert set(backend.call("checkout-admin", "get-store")) == {
        "project_id",
        "store_id",
        "schema_version",
    }


def test_a_number_as_text_is_refused_not_coerced():
    with pytest.raises(ValueError, match="total_cents"):
        results.Totals.model_validate(
            {"subtotal_cents": 1, "shipping_cents": 0, "tax_cents": 0, "total_cents": "1"}
        )


def test_every_served_endpoint_publishes_its_result_model():
    spec = _spec()
    for (service, name), endpoint in ENDPOINTS.items():
        if HTTP not in endpoint.faces:
            continue
        ref = _result_ref(spec, service, name)
        assert ref == f"#/components/schemas/{endpoint.result_model.__name__}"
        published = endpoint.result_model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        published.pop("$defs", None)
        assert _component(spec, ref) == published
