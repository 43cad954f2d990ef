"""Settings the registry marks local-only change only on the store's own machine.

Which settings those are is read from the registry (``Setting.local_only``); the list pinned
here is the floor it must never drop below.
"""

from __future__ import annotations

import httpx
import pytest

from checkout_cli.engine.settings import SETTINGS
from tests.serve_helpers import served_fixture  # noqa: F401

LOCAL_ONLY = [key for key, setting in SETTINGS.items() if setting.local_only]
SAMPLE = {"str": "127.0.0.1", "url": "http://127.0.0.1:9", "id": "another-shop"}


def sample_value(key: str) -> object:
    """A valid value that differs from the default, so a write would show."""
    setting = SETTINGS[key]
    if setting.kind == "bool":
        return not setting.default
    if setting.kind == "int":
        return setting.default + 1
    if setting.kind == "choice":
        return next(c for c in setting.choices if c != setting.default)
    return SAMPLE[setting.kind]


def test_the_settings_that_route_secrets_or_name_the_store_are_local_only():
    assert set(LOCAL_ONLY) >= {
        "project_id",
        "email_transport",
        "email_outbox_dir",
        "stripe_api_base",
        "mollie_api_endpoint",
        "smtp_host",
        "smtp_port",
        "smtp_starttls",
        "smtp_ssl",
        "smtp_user",
    }


@pytest.mark.parametrize("key", LOCAL_ONLY)
def test_local_only_settings_are_refused_over_http_even_for_admin(served, key):
    value = sample_value(key)
    get_settings = served.endpoint_url("checkout-admin", "get-settings")
    before = httpx.post(get_settings, json={}, headers=served.auth).json()["result"]["settings"]
    # padded as the engine would strip it: the refusal reads the key the engine would write
    for sent in (key, f" {key} "):
        response = httpx.post(
            served.endpoint_url("checkout-admin", "set-setting"),
            json={"key": sent, "value": value},
            headers=served.auth,  # an admin token
        )
        assert response.status_code == 403, response.text
        error = response.json()["error_object"]
        assert (error["type"], error["code"], error["field"]) == ("forbidden", "local_only", "key")
        assert f"settings set {key}" in error["recovery"]
    after = httpx.post(get_settings, json={}, headers=served.auth).json()["result"]["settings"]
    assert after == before


def test_other_settings_still_change_over_http(served):
    url = served.endpoint_url("checkout-admin", "set-setting")
    response = httpx.post(url, json={"key": "shop_name", "value": "Team Shop"}, headers=served.auth)
    assert response.status_code == 200
    httpx.post(url, json={"key": "shop_name", "value": "Lens Shop Amsterdam"}, headers=served.auth)


@pytest.mark.parametrize("key", LOCAL_ONLY)
def test_the_local_cli_may_change_them(cli, key):
    assert cli("init").exit_code == 0
    result = cli("--json", "settings", "set", key, str(sample_value(key)).lower())
    assert result.exit_code == 0, result.stderr
    assert result.json()["value"] == sample_value(key)
