"""Property-based fuzzing of `checkout serve` from its own /openapi.json (schemathesis).

Every operation in the served spec gets valid and invalid requests (schemathesis' positive and
negative generation), the same examples on every run, with an admin token: no answer is ever a
5xx, every failure is an ``error_object``, every success a ``result`` object.

The operations are the registry's endpoints served over HTTP (``faces``); local-only ones (vault,
tokens) are not in the spec, and test_access proves the server refuses them. The fuzzed store
is its own (the fuzzer changes products and carts), with the payment providers and SMTP
pointed at a closed port on 127.0.0.1.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from checkout_cli.endpoints import ENDPOINTS, HTTP
from checkout_cli.server.openapi import openapi
from tests.conftest import WATCH
from tests.serve_helpers import PROJECT, prepare_store, serving

# Per operation, valid and invalid requests mixed, drawn from a fixed seed (derandomize): every
# operation gets the same examples on every run, however slow the machine (no time budget).
MAX_EXAMPLES = 20
CLOSED = "http://127.0.0.1:9"

OPERATIONS = [
    (method, service, name)
    for (service, name), endpoint in ENDPOINTS.items()
    if HTTP in endpoint.faces
    for method in (("POST", "GET") if endpoint.reads_only else ("POST",))
]
# One xdist worker runs the whole module (``--dist loadgroup`` in pytest's addopts): the last
# test sums what every operation saw, which a split module would see only part of.
pytestmark = pytest.mark.xdist_group("fuzz")
SEEN: Counter[tuple[int, str]] = Counter()  # (status, error code or "ok")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("fuzzed") / "shop.db"
    token = prepare_store(db, scope="admin")  # every served endpoint, into its handler
    from checkout_cli.backends.local import LocalBackend

    local = LocalBackend(db, actor="test")
    for key, value in {
        "stripe_api_base": CLOSED,
        "mollie_api_endpoint": CLOSED,
        "smtp_host": "127.0.0.1",
        "smtp_port": 9,
        "email_transport": "file",
        "provider_timeout_seconds": 2,
    }.items():
        local.call("checkout-admin", "set-setting", {"key": key, "value": value})
    local.close()
    with serving(db, token, workers=2) as server:
        yield server
    WATCH.export_store(db)


@pytest.fixture(scope="module")
def api_schema(fuzzed):
    spec = httpx.get(f"{fuzzed.url}/openapi.json", timeout=10).json()
    assert spec == openapi(fuzzed.project)  # what is served is generated from the registry
    return schemathesis.openapi.from_dict(spec)


@pytest.fixture(scope="module")
def session(fuzzed):
    with requests.Session() as s:
        yield s


def check_response(response: Any) -> None:
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:500]}"
    assert response.headers.get("content-type", "").startswith("application/json"), response.text
    payload = response.json()
    assert isinstance(payload, dict)
    if status == 200:
        assert payload.get("success") is True and isinstance(payload.get("result"), dict)
        assert set(payload) == {"success", "result"}
        SEEN[(status, "ok")] += 1
        return
    assert 400 <= status < 500, status
    assert set(payload) == {"success", "error_object"}, payload
    assert payload["success"] is False
    error = payload["error_object"]
    assert isinstance(error, dict)
    assert (
        {"type", "code", "message"}
        <= set(error)
        <= {
            "type",
            "code",
            "message",
            "field",
            "recovery",
            "errors",
        }
    ), error
    assert all(isinstance(v, str) for k, v in error.items() if k != "errors"), error
    # Every bad field, the first of them the error's own.
    problems = error.get("errors", [{"field": error.get("field"), "code": error["code"]}])
    assert problems and (problems[0]["field"], problems[0]["code"]) == (
        error.get("field"),
        error["code"],
    ), error
    assert all(set(p) == {"field", "code", "message"} for p in error.get("errors", [])), error
    SEEN[(status, error["code"])] += 1


@pytest.mark.parametrize(
    "method, service, name", OPERATIONS, ids=[f"{m} {s}/{n}" for m, s, n in OPERATIONS]
)
def test_no_5xx_and_every_error_is_an_error_object(
    api_schema, fuzzed, session, method, service, name
):
    operation = api_schema[f"/iapi/project/{PROJECT}/{service}/{name}"][method]
    strategy = operation.as_strategy(
        generation_mode=GenerationMode.POSITIVE
    ) | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def fuzz(case: schemathesis.Case) -> None:
        kwargs = case.as_transport_kwargs(base_url=fuzzed.url)
        # schemathesis fuzzes the bearer scheme too; the real token gets past it into the
        # handlers (test_server_http covers missing, malformed and wrong tokens)
        headers = {
            k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"
        }
        kwargs["headers"] = {**headers, **fuzzed.auth}
        check_response(session.request(**kwargs))

    fuzz()


def test_the_fuzzer_got_past_auth_into_the_handlers():
    if not SEEN:
        pytest.skip("run with the fuzzing tests")
    statuses = Counter(status for status, _ in SEEN.elements())
    assert statuses[401] == 0, SEEN  # the token went along every time
    assert SEEN[(403, "forbidden_scope")] == 0, SEEN  # and its scope reaches every operation
    assert statuses[200] > 0 and statuses[422] > 0 and statuses[404] > 0, SEEN
