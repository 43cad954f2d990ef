"""The wire format of `checkout serve`, raw over HTTP: auth, routing, limits, error shapes and
Idempotency-Key replays. Every failure is ``{"success": false, "error_object": …}``; a
refused request changes nothing in the store."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from checkout_cli.cli.app import app
from checkout_cli.endpoints import ENDPOINTS, HTTP
from tests.conftest import dump
from tests.serve_helpers import (
    create_token,
    served_fixture,  # noqa: F401
)

ERROR_KEYS = {"type", "code", "message", "field", "recovery", "errors"}


def error_of(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The error_object of a failure, after checking the envelope's shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert set(payload) == {"success", "error_object"}, payload
    assert payload["success"] is False
    error = payload["error_object"]
    assert {"type", "code", "message"} <= set(error) <= ERROR_KEYS, error
    assert all(isinstance(error[k], str) and error[k] for k in ("type", "code", "message"))
    if "errors" in error:
        # Every bad field, the first of them the one named in field/code/message.
        first = error["errors"][0]
        assert set(first) == {"field", "code", "message"}, error
        assert (first["field"], first["code"]) == (error.get("field"), error["code"]), error
    if code is not None:
        assert error["code"] == code, error
    return error


@pytest.fixture(scope="module")
def http(served):
    with httpx.Client(timeout=10) as client:
        yield client


def _add_item(served, http, headers: dict[str, str], **body: Any) -> httpx.Response:
    body = {"product_sku": "GIFT-CARD-25", "quantity": 1, **body}
    return http.post(served.endpoint_url("shopping-cart", "add-item"), json=body, headers=headers)


# -- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization, code",
    [
        (None, "missing_token"),
        ("Token ck_abc", "missing_token"),
        ("Basic dXNlcjpwYXNz", "missing_token"),
        ("Bearer ck_not-a-real-token", "invalid_token"),
        ("Bearer", "missing_token"),
    ],
)
def test_missing_or_wrong_token_is_401_and_changes_nothing(served, http, authorization, code):
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    if authorization is not None:
        headers["Authorization"] = authorization
    before = dump(served.db)
    error = error_of(_add_item(served, http, headers), 401, code)
    assert error["type"] == "auth" and "recovery" in error
    read = http.get(served.endpoint_url("product-catalog", "list-products"), headers=headers)
    error_of(read, 401, code)
    assert dump(served.db) == before


def test_revoked_token_is_401_and_changes_nothing(served, http):
    token = create_token(served.db, "front-desk-revoked")
    headers = {"Authorization": f"Bearer {token}"}
    ok = http.get(
        served.endpoint_url("product-catalog", "get-product"),
        params={"sku": "GIFT-CARD-25"},
        headers=headers,
    )
    assert ok.status_code == 200 and ok.json()["result"]["sku"] == "GIFT-CARD-25"
    revoked = CliRunner().invoke(
        app, ["--db", str(served.db), "--json", "tokens", "revoke", "front-desk-revoked"]
    )
    assert revoked.exit_code == 0, revoked.stderr
    listed = CliRunner().invoke(app, ["--db", str(served.db), "--json", "tokens", "list"])
    assert token not in listed.stdout  # only names and dates, never a token or its hash
    before = dump(served.db)
    error_of(_add_item(served, http, headers), 401, "invalid_token")
    assert dump(served.db) == before


def test_the_store_keeps_only_a_hash_of_each_token(served):
    assert served.token not in "\n".join(dump(served.db))


def test_project_id_mismatch_is_404_and_changes_nothing(served, http):
    before = dump(served.db)
    url = served.endpoint_url("shopping-cart", "add-item", project="other-shop")
    response = http.post(
        url, json={"product_sku": "GIFT-CARD-25", "quantity": 1}, headers=served.auth
    )
    error = error_of(response, 404, "project_not_found")
    assert error["type"] == "not_found"
    assert dump(served.db) == before


# -- limits, malformed requests, routing ----------------------------------------------------------


def test_body_over_one_mib_is_413(served, http):
    before = dump(served.db)
    big = json.dumps({"product_sku": "GIFT-CARD-25", "quantity": 1, "pad": "x" * (1 << 20)})
    url = served.endpoint_url("shopping-cart", "add-item")
    headers = {**served.auth, "Content-Type": "application/json"}
    error_of(http.post(url, content=big, headers=headers), 413, "body_too_large")

    def chunks():  # no Content-Length: the server counts as it reads
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536].encode()

    error_of(http.post(url, content=chunks(), headers=headers), 413, "body_too_large")
    assert dump(served.db) == before


@pytest.mark.parametrize(
    "raw", [b"{not json", b'{"product_sku": ', b"\xff\xfe", b'["a list"]', b"42", b'"text"']
)
def test_malformed_json_is_422_invalid_json(served, http, raw):
    response = http.post(
        served.endpoint_url("shopping-cart", "add-item"),
        content=raw,
        headers={**served.auth, "Content-Type": "application/json"},
    )
    assert error_of(response, 422, "invalid_json")["type"] == "validation"


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,  # nested deeper than the parser goes
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"sku": "NAN-1", "name": "n", "price_cents": 1, "config": {"x": NaN}}',
        b'{"sku": "NAN-1", "name": "n", "price_cents": 1, "config": {"x": [Infinity]}}',
        b'{"sku": "NAN-1", "name": "n", "price_cents": 1, "config": {"x": -Infinity}}',
        b'{"sku": "NAN-1", "name": "n", "price_cents": 1, "config": {"x": 1e400}}',
    ],
)
def test_what_python_parses_but_json_is_not_is_422_and_stores_nothing(served, http, raw):
    """Regression: these were 500s, and a stored NaN made every later answer with it a 500."""
    before = dump(served.db)
    response = http.post(
        served.endpoint_url("product-catalog", "upsert-product"),
        content=raw,
        headers={**served.auth, "Content-Type": "application/json"},
    )
    error_of(response, 422, "invalid_json")
    assert dump(served.db) == before


def test_keep_alive_requests_are_not_held_back_by_nagle(served):
    """Regression: with --workers N uvicorn left TCP_NODELAY off, so every request after the
    first on a connection waited ~40 ms for the client's delayed ACK."""
    import statistics
    import time

    url = served.endpoint_url("product-catalog", "get-product")
    with httpx.Client(timeout=10) as client:
        client.post(url, json={"sku": "GIFT-CARD-25"}, headers=served.auth)
        times = []
        for _ in range(15):
            started = time.perf_counter()
            client.post(url, json={"sku": "GIFT-CARD-25"}, headers=served.auth)
            times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.030, times


def test_a_body_that_fails_the_schema_is_422_naming_the_field(served, http):
    response = http.post(
        served.endpoint_url("checkout-flow", "initiate-checkout"),
        json={"cart_token": "cart_x", "surprise": 1},
        headers=served.auth,
    )
    assert error_of(response, 422, "unknown_field")["field"] == "surprise"


@pytest.mark.parametrize(
    "service, name", [("shopping-cart", "add-item"), ("checkout-flow", "complete-checkout")]
)
def test_get_on_a_write_endpoint_is_405(served, http, service, name):
    before = dump(served.db)
    response = http.get(served.endpoint_url(service, name), headers=served.auth)
    assert error_of(response, 405)["type"] == "validation"
    assert dump(served.db) == before


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(served, http, method):
    response = http.request(
        method, served.endpoint_url("checkout-flow", "get-checkout-status"), headers=served.auth
    )
    error_of(response, 405)


@pytest.mark.parametrize(
    "path, code",
    [
        ("/nope", "not_found"),
        ("/iapi/project", "not_found"),
        ("/iapi/project/shop-nl/checkout-flow", "not_found"),
        ("/iapi/project/shop-nl/checkout-flow/teleport-checkout", "endpoint_not_found"),
        ("/iapi/project/shop-nl/no-such-service/get-thing", "endpoint_not_found"),
    ],
)
def test_unknown_routes_are_404(served, http, path, code):
    error_of(http.post(served.url + path, json={}, headers=served.auth), 404, code)
    error_of(http.get(served.url + path, headers=served.auth), 404, code)


def test_get_with_query_parameters_on_reads(served, http):
    url = served.endpoint_url("product-catalog", "list-products")
    listed = http.get(url, params={"limit": "2"}, headers=served.auth)
    assert listed.status_code == 200, listed.text
    payload = listed.json()
    assert payload["success"] is True and len(payload["result"]["products"]) <= 2
    posted = http.post(url, json={"limit": 2}, headers=served.auth).json()
    assert posted == payload
    bad = http.get(url, params={"limit": "many"}, headers=served.auth)
    assert error_of(bad, 422)["field"] == "limit"


def test_meta_healthz_and_openapi_list_every_endpoint_served_over_http(served, http):
    health = http.get(f"{served.url}/healthz")
    assert health.json() == {"status": "ok", "database": "reachable"}
    assert "server" not in health.headers  # the software and its version are nobody's business
    over_http = {key: e for key, e in ENDPOINTS.items() if HTTP in e.faces}
    assert ("checkout-admin", "set-vault") not in over_http  # local-only: not even described
    meta = http.get(f"{served.url}/iapi/meta").json()
    assert meta["project_id"] == served.project and meta["api_version"]
    assert {(s, n) for s, names in meta["services"].items() for n in names} == set(over_http)
    spec = http.get(f"{served.url}/openapi.json").json()
    paths = {
        f"/iapi/project/{served.project}/{s}/{n}" for s, n in over_http
    }  # the registry's HTTP face, nothing more, nothing less
    assert set(spec["paths"]) == paths
    for (service, name), endpoint in over_http.items():
        item = spec["paths"][f"/iapi/project/{served.project}/{service}/{name}"]
        assert set(item) == ({"get", "post"} if endpoint.reads_only else {"post"})
        assert item["post"]["x-scope"] == endpoint.scope
        schema = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        published = endpoint.request.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, shared in published.pop("$defs", {}).items():
            assert spec["components"]["schemas"][name] == shared
        assert schema == published


def test_openapi_is_valid_openapi_3_1_with_the_real_error_responses(served, http):
    """Regression: it said 3.0.3 while its schemas are JSON Schema 2020-12 (125 errors)."""
    from openapi_spec_validator import OpenAPIV31SpecValidator

    spec = http.get(f"{served.url}/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    assert [e.message for e in OpenAPIV31SpecValidator(spec).iter_errors()] == []
    for item in spec["paths"].values():
        responses = item["post"]["responses"]
        assert {"200", "401", "403", "404", "409", "413", "422", "503"} <= set(responses)
        error_schema = responses["422"]["content"]["application/json"]["schema"]
        assert error_schema == {"$ref": "#/components/schemas/Error"}
    error_object = spec["components"]["schemas"]["Error"]["properties"]["error_object"]
    assert error_object["required"] == ["type", "code", "message"]


# -- Idempotency-Key -------------------------------------------------------------------------------


def _cart_quantity(served, http, cart: str) -> int:
    got = http.get(
        served.endpoint_url("shopping-cart", "get-cart"),
        params={"cart_token": cart},
        headers=served.auth,
    )
    return sum(item["quantity"] for item in got.json()["result"]["items"])


def test_same_key_and_body_replays_the_first_answer_once(served, http):
    cart = _add_item(served, http, served.auth).json()["result"]["cart_token"]
    headers = {**served.auth, "Idempotency-Key": str(uuid.uuid4())}
    first = _add_item(served, http, headers, cart_token=cart, quantity=2)
    second = _add_item(served, http, headers, cart_token=cart, quantity=2)
    assert first.status_code == second.status_code == 200
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert _cart_quantity(served, http, cart) == 3  # 1 + 2, not 1 + 2 + 2


def test_same_key_with_another_body_is_409_and_runs_nothing(served, http):
    cart = _add_item(served, http, served.auth).json()["result"]["cart_token"]
    headers = {**served.auth, "Idempotency-Key": str(uuid.uuid4())}
    assert _add_item(served, http, headers, cart_token=cart).status_code == 200
    before = dump(served.db)
    reused = _add_item(served, http, headers, cart_token=cart, quantity=5)
    assert error_of(reused, 409, "idempotency_key_reused")["type"] == "conflict"
    other_endpoint = http.post(
        served.endpoint_url("shopping-cart", "clear-cart"),
        json={"cart_token": cart},
        headers=headers,
    )
    error_of(other_endpoint, 409, "idempotency_key_reused")
    assert dump(served.db) == before
    assert _cart_quantity(served, http, cart) == 2


def test_a_failed_write_is_replayed_as_the_same_failure(served, http):
    headers = {**served.auth, "Idempotency-Key": str(uuid.uuid4())}
    first = _add_item(served, http, headers, product_sku="NO-SUCH-SKU")
    second = _add_item(served, http, headers, product_sku="NO-SUCH-SKU")
    assert error_of(first, 404, "product_not_found") == error_of(second, 404, "product_not_found")
    assert second.headers["idempotent-replayed"] == "true"


def test_keys_are_per_token(served, http):
    """Another token's request with the same key runs on its own (no answers across tokens)."""
    other = {"Authorization": f"Bearer {create_token(served.db, 'second-client')}"}
    key = str(uuid.uuid4())
    mine = _add_item(served, http, {**served.auth, "Idempotency-Key": key})
    theirs = _add_item(served, http, {**other, "Idempotency-Key": key})
    assert theirs.status_code == 200 and "idempotent-replayed" not in theirs.headers
    assert theirs.json()["result"]["cart_token"] != mine.json()["result"]["cart_token"]


def test_reads_ignore_the_key(served, http):
    headers = {**served.auth, "Idempotency-Key": str(uuid.uuid4())}
    url = served.endpoint_url("product-catalog", "get-product")
    for _ in range(2):
        response = http.post(url, json={"sku": "GIFT-CARD-25"}, headers=headers)
        assert response.status_code == 200 and "idempotent-replayed" not in response.headers


# -- hostile values ----------------------------------------------------------------------------


def _every_string_a_surrogate(node: Any) -> Any:
    """A body for the JSON Schema ``node`` with every text field a lone surrogate (JSON's
    ``"\\ud800"``)."""
    node = next((s for s in node.get("anyOf", [node]) if s.get("type") != "null"), node)
    if node.get("type") == "object" and "properties" in node:
        return {key: _every_string_a_surrogate(prop) for key, prop in node["properties"].items()}
    if node.get("type") == "array":
        return [_every_string_a_surrogate(node["items"])]
    if node.get("type") in ("integer", "boolean"):
        return None  # left out: only the text fields are under test
    return "\ud800"


@pytest.mark.parametrize("key", [k for k, e in ENDPOINTS.items() if HTTP in e.faces], ids="/".join)
def test_a_lone_surrogate_in_any_field_is_422_and_stores_nothing(served, http, key):
    """Regression: a string holding ``\\ud800`` (valid JSON, no text) was a 500 on 20
    endpoints: it cannot be encoded to be stored, logged or sent on."""
    from checkout_cli.schema import inline_schema

    body = _every_string_a_surrogate(inline_schema(ENDPOINTS[key].request))
    body = {k: v for k, v in body.items() if v is not None}
    raw = json.dumps(body).encode()  # ensure_ascii: the surrogate travels as \ud800
    before = dump(served.db)
    response = http.post(
        served.endpoint_url(*key),
        content=raw,
        headers={**served.auth, "Content-Type": "application/json"},
    )
    if body:
        assert "lone surrogate" in error_of(response, 422, "invalid_json")["message"]
    else:  # nothing to put one in
        assert response.status_code < 500, response.text
    assert dump(served.db) == before


def test_a_5000_digit_number_is_422(served, http):
    raw = b'{"product_sku": "GIFT-CARD-25", "quantity": ' + b"9" * 5000 + b"}"
    response = http.post(
        served.endpoint_url("shopping-cart", "add-item"),
        content=raw,
        headers={**served.auth, "Content-Type": "application/json"},
    )
    assert "5000 digits" in error_of(response, 422, "invalid_json")["message"]
    assert len(response.text) < 1000  # the number is not echoed back


@pytest.mark.parametrize(
    ("number", "said"),
    [
        ("1e-50000000", "out of range"),  # 0.0 as a float: read as quantity 0 before
        ("0.99999999999999999999", "more digits"),  # 1.0 as a float: read as quantity 1
        ("9007199254740993.0", "more digits"),  # ...992 as a float
    ],
)
def test_a_number_its_float_misreads_is_422_and_adds_nothing(served, http, number, said):
    before = dump(served.db)
    raw = f'{{"product_sku": "GIFT-CARD-25", "quantity": {number}}}'
    response = http.post(
        served.endpoint_url("shopping-cart", "add-item"),
        content=raw.encode(),
        headers={**served.auth, "Content-Type": "application/json"},
    )
    assert said in error_of(response, 422, "invalid_json")["message"]
    assert dump(served.db) == before


def test_a_content_length_of_unicode_digits_is_not_a_500(served):
    """``"²".isdigit()`` is true and ``int("²")`` raises: the header is read as ASCII only."""
    import socket

    host, port = served.url.removeprefix("http://").split(":")
    path = served.endpoint_url("shopping-cart", "get-cart").removeprefix(served.url)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {served.auth['Authorization']}"
        "\r\nContent-Type: application/json\r\nContent-Length: \u00b2\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:300]
