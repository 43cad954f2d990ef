"""Settings that decide where a secret is sent change only on the store's own machine."""

from __future__ import annotations

import httpx
import pytest

from tests.serve_helpers import served_fixture  # noqa: F401

GUARDED = [
    "stripe_api_base",
    "mollie_api_endpoint",
    "smtp_host",
    "smtp_port",
    "smtp_starttls",
    "smtp_ssl",
]


@pytest.mark.parametrize("key", GUARDED)
def test_secret_routing_settings_are_refused_over_http(served, key):
    value = {"smtp_port": 2525, "smtp_starttls": False, "smtp_ssl": True}.get(
        key, "http://127.0.0.1:9"
    )
    response = httpx.post(
        served.endpoint_url("checkout-admin", "set-setting"),
        json={"key": key, "value": value},
        headers=served.auth,
    )
    assert response.status_code == 403
    assert response.json()["error_object"]["code"] == "setting_local_only"
    current = httpx.post(
        served.endpoint_url("checkout-admin", "get-settings"), json={}, headers=served.auth
    ).json()["result"]["settings"][key]
    assert current != value


def test_other_settings_still_change_over_http(served):
    url = served.endpoint_url("checkout-admin", "set-setting")
    response = httpx.post(url, json={"key": "shop_name", "value": "Team Shop"}, headers=served.auth)
    assert response.status_code == 200
    httpx.post(url, json={"key": "shop_name", "value": "Lens Shop Amsterdam"}, headers=served.auth)


def test_the_local_cli_may_change_them(cli):
    result = cli("settings", "set", "stripe_api_base", "http://127.0.0.1:12111")
    assert result.exit_code == 0, result.stderr
