"""A rate-limited remote (HTTP 429 with Retry-After, as the hosted platform documents): the
client waits as asked, within a bound, and retries the same call under the same
Idempotency-Key; past the bound it stops with `rate_limited` (exit 6). A failure answered
with HTTP 200 and `success: false` is raised as its error object says."""

from __future__ import annotations

import datetime as dt
import json
import time
from email.utils import format_datetime

import pytest
from typer.testing import CliRunner

from checkout_cli.backends.remote import RemoteBackend
from checkout_cli.cli.app import app
from checkout_cli.errors import ForbiddenError, UnavailableError
from tests.serve_helpers import Recorded, StandIn

CART = "shopping-cart"
OK = json.dumps({"success": True, "result": {"cart_token": "cart_x", "items": []}}).encode()
JSON = {"Content-Type": "application/json"}


def limited(times: int, retry_after: str | None):
    """Answers 429 ``times`` times (with ``retry_after``, if any), then succeeds."""
    seen = {"n": 0}

    def respond(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        seen["n"] += 1
        if seen["n"] <= times:
            headers = {**JSON, **({"Retry-After": retry_after} if retry_after else {})}
            body = {
                "success": False,
                "error_object": {
                    "type": "rate_limit",
                    "code": "rate_limited",
                    "message": "30 requests per minute",
                },
            }
            return 429, headers, json.dumps(body).encode()
        return 200, JSON, OK

    return respond


def test_a_429_is_waited_out_and_retried_under_the_same_key():
    with StandIn(limited(2, "1")) as platform:
        remote = RemoteBackend(platform.url, "12345", "wps_test")
        started = time.monotonic()
        result = remote.call(CART, "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
        waited = time.monotonic() - started
    assert result["cart_token"] == "cart_x"
    assert len(platform.requests) == 3
    keys = {
        next((v for k, v in r.headers.items() if k.lower() == "idempotency-key"), None)
        for r in platform.requests
    }
    assert len(keys) == 1 and None not in keys  # one call, retried: never a second write
    assert waited >= 2.0  # as long as the server asked, twice
    assert all(r.path == "/iapi/project/12345/shopping-cart/add-item" for r in platform.requests)


def test_retry_after_as_an_http_date_is_read():
    soon = format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1), usegmt=True)
    with StandIn(limited(1, soon)) as platform:
        remote = RemoteBackend(platform.url, "12345", "wps_test")
        assert remote.call(CART, "get-cart", {"cart_token": "cart_x"})["cart_token"] == "cart_x"
    assert len(platform.requests) == 2


def test_a_wait_past_the_bound_stops_at_once_with_rate_limited_exit_6():
    with StandIn(limited(100, "3600")) as platform:
        remote = RemoteBackend(platform.url, "12345", "wps_test")
        started = time.monotonic()
        with pytest.raises(UnavailableError) as caught:
            remote.call(CART, "get-cart", {"cart_token": "cart_x"})
        assert time.monotonic() - started < 5  # not an hour's sleep: it says so now
    assert (caught.value.code, caught.value.exit_code) == ("rate_limited", 6)
    assert len(platform.requests) == 1
    with StandIn(limited(100, "3600")) as platform:
        run = CliRunner().invoke(
            app,
            ["--remote", platform.url, "--project", "12345", "cart", "show", "cart_x"],
            env={"CHECKOUT_TOKEN": "wps_test"},
        )
    assert run.exit_code == 6, run.output
    assert "rate" in run.output and "Traceback" not in run.output


def test_an_error_with_http_200_and_success_false_is_raised_as_it_says():
    def respond(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        body = {
            "success": False,
            "error_object": {
                "type": "forbidden",
                "code": "invoice_checkout_not_allowed",
                "message": "invoices are off",
                "field": "provider",
            },
        }
        return 200, JSON, json.dumps(body).encode()

    with StandIn(respond) as platform:
        remote = RemoteBackend(platform.url, "12345", "wpa_test")
        with pytest.raises(ForbiddenError) as caught:
            remote.call(
                "checkout-flow",
                "create-payment",
                {"checkout_token": "chk_x", "provider": "invoice"},
            )
    assert (caught.value.code, caught.value.field, caught.value.exit_code) == (
        "invoice_checkout_not_allowed",
        "provider",
        7,
    )
    assert len(platform.requests) == 1  # an answer, not a network error: not retried
