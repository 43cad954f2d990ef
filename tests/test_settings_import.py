"""`settings import FILE` (all or nothing, every bad key named) and `settings unset KEY`;
local-only settings are refused over HTTP before anything is written, as `settings set` is."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from checkout_cli.engine.settings import SETTINGS
from checkout_cli.errors import ValidationError
from tests.conftest import FIXTURES, dump
from tests.serve_helpers import served_fixture  # noqa: F401
from tests.test_setting_routes import LOCAL_ONLY, sample_value

ADMIN = "checkout-admin"
SHIPPED = json.loads((FIXTURES / "settings.json").read_text())


def settings_of(backend) -> dict:
    return backend.call(ADMIN, "get-settings", {})["settings"]


def test_the_shipped_settings_file_loads_into_a_fresh_store(cli):
    assert cli("init").exit_code == 0
    imported = cli("settings", "import", str(FIXTURES / "settings.json"))
    assert imported.exit_code == 0, imported.stderr
    assert f"imported {len(SHIPPED)} settings" in imported.stderr
    shown = cli("--json", "settings", "show").json()["settings"]
    assert {key: shown[key] for key in SHIPPED} == SHIPPED


def test_every_bad_key_is_named_at_once_and_nothing_is_written(backend, cli, db_path, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "shop_name": "Would be fine",
                "curency": "EUR",
                "tax_rates": {"XX": "5"},
                "smtp_port": 99999,
                "allow_invoice_checkout": "maybe",
            }
        )
    )
    before = dump(db_path)
    refused = cli("settings", "import", str(bad))
    assert refused.exit_code == 4
    assert len(refused.stderr.splitlines()) == 1
    for named in ("curency", "tax_rates", "smtp_port", "allow_invoice_checkout"):
        assert named in refused.stderr
    assert "4 of 5 settings refused, nothing changed" in refused.stderr
    error = json.loads(cli("--json", "settings", "import", str(bad)).stderr)["error_object"]
    assert (error["type"], error["code"], error["field"]) == (
        "validation",
        "invalid_setting",
        "settings",
    )
    assert dump(db_path) == before


def test_import_is_one_transaction(backend):
    """Checked before writing: a bad value last in the object leaves the first ones unwritten."""
    before = settings_of(backend)
    with pytest.raises(ValidationError):
        backend.call(
            ADMIN,
            "import-settings",
            {"settings": {"shop_name": "New", "currency": "EUR", "checkout_ttl_minutes": -5}},
        )
    assert settings_of(backend) == before


@pytest.mark.parametrize(
    "content, message",
    [("[1, 2]", "expected a JSON object"), ("{not json", "is not valid JSON")],
)
def test_a_file_that_is_not_an_object_is_a_usage_error(cli, tmp_path: Path, content, message):
    path = tmp_path / "settings.json"
    path.write_text(content)
    refused = cli("settings", "import", str(path))
    assert refused.exit_code == 2 and message in refused.stderr
    missing = cli("settings", "import", str(tmp_path / "none.json"))
    assert missing.exit_code == 2 and "cannot read" in missing.stderr


def test_unset_returns_a_setting_to_its_default(backend, cli):
    assert settings_of(backend)["shop_name"] == "Lens Shop Amsterdam"  # the fixture's
    unset = cli("--json", "settings", "unset", "shop_name")
    assert unset.exit_code == 0, unset.stderr
    assert unset.json() == {"key": "shop_name", "value": "Checkout Shop", "was_set": True}
    assert settings_of(backend)["shop_name"] == SETTINGS["shop_name"].default
    again = cli("settings", "unset", "shop_name")
    assert again.exit_code == 0 and "(it was not set)" in again.stderr
    unknown = cli("settings", "unset", "shop_nam")
    assert unknown.exit_code == 4 and "no setting named 'shop_nam'" in unknown.stderr


def test_local_cli_may_import_and_unset_local_only_settings(backend, cli, tmp_path):
    path = tmp_path / "mail.json"
    path.write_text(json.dumps({"smtp_host": "mail.example", "smtp_port": 2525}))
    assert cli("settings", "import", str(path)).exit_code == 0
    assert settings_of(backend)["smtp_port"] == 2525
    assert cli("settings", "unset", "smtp_port").exit_code == 0
    assert settings_of(backend)["smtp_port"] == 587


def test_remote_import_with_a_local_only_key_is_refused_before_sending(served, cli, tmp_path):
    path = tmp_path / "remote.json"
    path.write_text(
        json.dumps({"shop_name": "Hijacked", **{k: sample_value(k) for k in LOCAL_ONLY}})
    )
    before = dump(served.db)
    refused = cli(*served.remote_args(), "settings", "import", str(path), env=served.cli_env())
    assert refused.exit_code == 7, refused.stderr
    assert all(key in refused.stderr for key in LOCAL_ONLY)  # every one named at once
    unset = cli(*served.remote_args(), "settings", "unset", "smtp_host", env=served.cli_env())
    assert unset.exit_code == 7 and "only on the server's own machine" in unset.stderr
    assert dump(served.db) == before


@pytest.mark.parametrize("key", LOCAL_ONLY)
def test_local_only_keys_are_refused_over_http_even_padded(served, key):
    before = dump(served.db)
    for sent in (key, f" {key} "):
        for name, body in (
            ("import-settings", {"settings": {"shop_name": "Hijacked", sent: sample_value(key)}}),
            ("unset-setting", {"key": sent}),
        ):
            response = httpx.post(served.endpoint_url(ADMIN, name), json=body, headers=served.auth)
            assert response.status_code == 403, response.text
            assert response.json()["error_object"]["code"] == "local_only"
    assert dump(served.db) == before


def test_remote_import_and_unset_of_other_settings_work(served, cli, tmp_path):
    path = tmp_path / "remote.json"
    path.write_text(json.dumps({"shop_name": "Team Shop", "checkout_ttl_minutes": 60}))
    env = served.cli_env()
    try:
        imported = cli(*served.remote_args(), "--json", "settings", "import", str(path), env=env)
        assert imported.exit_code == 0, imported.stderr
        shown = served.local().call(ADMIN, "get-settings", {})["settings"]
        assert (shown["shop_name"], shown["checkout_ttl_minutes"]) == ("Team Shop", 60)
        unset = cli(*served.remote_args(), "settings", "unset", "checkout_ttl_minutes", env=env)
        assert unset.exit_code == 0, unset.stderr
        assert (
            served.local().call(ADMIN, "get-settings", {})["settings"]["checkout_ttl_minutes"]
            == 1440
        )
    finally:  # the served store is shared: put it back
        restore = {"shop_name": "Lens Shop Amsterdam", "checkout_ttl_minutes": 1440}
        served.local().call(ADMIN, "import-settings", {"settings": restore})
