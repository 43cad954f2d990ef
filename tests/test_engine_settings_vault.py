"""checkout-admin through the engine: settings, the write-only vault, API tokens, doctor."""

from __future__ import annotations

import json

import pytest

from checkout_cli.engine.settings import SETTINGS
from checkout_cli.engine.tokens import Caller, verify
from checkout_cli.engine.vault import secret
from checkout_cli.engine.vault_keys import key_file
from checkout_cli.errors import ConflictError, NotFoundError, ValidationError
from tests.conftest import WATCH, dump
from tests.engine_helpers import ADMIN, query, refused

SMTP_PASSWORD = WATCH.secret("smtp-Pa55word-for-engine-tests-7f3a")
MOLLIE_KEY = WATCH.secret("test_engine0tests0mollie0key0zz9")


def settings_of(backend):
    return backend.call(ADMIN, "get-settings", {})["settings"]


# ---- settings --------------------------------------------------------------------------------


def test_get_settings_has_every_key_with_defaults_and_stored_values(backend):
    settings = settings_of(backend)
    assert set(settings) == set(SETTINGS)
    assert settings["shop_name"] == "Lens Shop Amsterdam"  # from fixtures/settings.json
    assert settings["allow_invoice_checkout"] is True
    assert settings["tax_rates"]["NL"] == "21"
    assert settings["email_transport"] == "file"  # default
    assert settings["smtp_port"] == 587


@pytest.mark.parametrize(
    ("key", "value", "stored"),
    [
        ("allow_invoice_checkout", "off", False),
        ("allow_invoice_checkout", "YES", True),
        ("auto_complete_paid", True, True),
        ("default_shipping_cents", "695", 695),
        ("checkout_ttl_minutes", 0, 0),
        ("checkout_ttl_minutes", 10 * 366 * 24 * 60, 10 * 366 * 24 * 60),
        ("default_shipping_cents", 10**12, 10**12),
        ("smtp_port", "65535", 65535),
        ("currency", "usd", "USD"),
        ("shop_email", " shop@lens.example ", "shop@lens.example"),
        ("tax_rates", '{"nl": 9, "BE": "6.5"}', {"NL": "9", "BE": "6.5"}),
        ("lists", {"fonts": ["a", "b"]}, {"fonts": ["a", "b"]}),
        ("email_transport", "smtp", "smtp"),
        ("payment_redirect_url", "https://shop.example/thanks", "https://shop.example/thanks"),
        ("payment_redirect_url", "", ""),
    ],
)
def test_set_setting_parses_by_type(backend, key, value, stored):
    assert backend.call(ADMIN, "set-setting", {"key": key, "value": value}) == {
        "key": key,
        "value": stored,
    }
    assert settings_of(backend)[key] == stored


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("allow_invoice_checkout", "maybe"),
        ("allow_invoice_checkout", 1),
        ("default_shipping_cents", -5),
        ("default_shipping_cents", "-5"),
        ("default_shipping_cents", 4.95),
        ("checkout_ttl_minutes", True),
        ("currency", "EURO"),
        ("shop_email", "not-an-email"),
        ("shop_name", 42),
        ("email_transport", "pigeon"),
        ("tax_rates", "{not json"),
        ("tax_rates", {"XX": "21"}),
        ("tax_rates", {"NL": "101"}),
        ("tax_rates", {"NL": "lots"}),
        ("tax_rates", ["NL", "21"]),
        ("lists", {"fonts": "serif"}),
        ("payment_redirect_url", "ftp://shop.example"),
        # Accepted, these would make every later initiate-checkout crash (date or int overflow).
        ("checkout_ttl_minutes", 10**12),
        ("default_shipping_cents", 10**30),
        ("smtp_port", 70000),
    ],
)
def test_set_setting_invalid_value(backend, key, value):
    error = refused(
        backend,
        ADMIN,
        "set-setting",
        {"key": key, "value": value},
        ValidationError,
        "invalid_setting",
        "value",
    )
    assert error.message.startswith(f"{key}: ")


def test_set_setting_unknown_or_incomplete(backend):
    error = refused(
        backend,
        ADMIN,
        "set-setting",
        {"key": "allow_everything", "value": True},
        ValidationError,
        "unknown_setting",
        "key",
    )
    assert "allow_invoice_checkout" in (error.recovery or "")
    refused(
        backend,
        ADMIN,
        "set-setting",
        {"key": "currency"},
        ValidationError,
        "missing_field",
        "value",
    )
    refused(
        backend,
        ADMIN,
        "set-setting",
        {"key": "currency", "value": "EUR", "scope": "global"},
        ValidationError,
        "unknown_field",
        "scope",
    )
    refused(backend, ADMIN, "get-settings", {"key": "x"}, ValidationError, "unknown_field", "key")


# ---- vault -----------------------------------------------------------------------------------


def test_vault_is_write_only(backend):
    listed = backend.call(ADMIN, "list-vault", {})["secrets"]
    assert [s["name"] for s in listed] == [
        "stripe_secret_key",
        "stripe_webhook_secret",
        "mollie_api_key",
        "smtp_password",
    ]
    assert not any(s["set"] for s in listed)
    result = backend.call(ADMIN, "set-vault", {"name": "smtp_password", "value": SMTP_PASSWORD})
    key_id = result["key_id"]
    assert result == {
        "name": "smtp_password",
        "set": True,
        "key_id": key_id,
        "new_key_file": str(key_file(backend.engine.store_id)),  # the first value makes it
    }
    again = backend.call(ADMIN, "set-vault", {"name": "mollie_api_key", "value": MOLLIE_KEY})
    assert (again["key_id"], again["new_key_file"]) == (key_id, None)
    listed = backend.call(ADMIN, "list-vault", {})
    text = json.dumps(listed) + json.dumps(settings_of(backend))
    assert SMTP_PASSWORD not in text and MOLLIE_KEY not in text
    smtp = next(s for s in listed["secrets"] if s["name"] == "smtp_password")
    assert smtp["set"] is True and smtp["set_at"].endswith("Z")
    assert set(smtp) == {"name", "description", "set", "set_at", "key_id"}
    assert smtp["key_id"] == key_id
    [(stored,)] = query(backend.db_path, "SELECT value FROM vault WHERE name = 'smtp_password'")
    assert stored.startswith(f"v1:{key_id}:") and SMTP_PASSWORD not in stored
    assert secret(backend.engine.conn, "smtp_password") == SMTP_PASSWORD
    # Setting again replaces; deleting forgets.
    backend.call(ADMIN, "set-vault", {"name": "smtp_password", "value": SMTP_PASSWORD + "2"})
    assert query(backend.db_path, "SELECT COUNT(*) FROM vault") == [(2,)]
    assert backend.call(ADMIN, "delete-vault", {"name": "smtp_password"}) == {
        "name": "smtp_password",
        "set": False,
    }
    assert query(backend.db_path, "SELECT name FROM vault") == [("mollie_api_key",)]


def test_vault_errors(backend):
    for name in ("set-vault", "delete-vault"):
        body = {"name": "aws_key", **({"value": "x"} if name == "set-vault" else {})}
        error = refused(backend, ADMIN, name, body, ValidationError, "unknown_secret", "name")
        assert "smtp_password" in (error.recovery or "")
    refused(
        backend,
        ADMIN,
        "delete-vault",
        {"name": "stripe_secret_key"},
        NotFoundError,
        "secret_not_found",
        "name",
    )
    refused(
        backend,
        ADMIN,
        "set-vault",
        {"name": "smtp_password"},
        ValidationError,
        "missing_field",
        "value",
    )
    refused(
        backend,
        ADMIN,
        "set-vault",
        {"name": "smtp_password", "value": ""},
        ValidationError,
        "missing_field",
        "value",
    )


# ---- API tokens ------------------------------------------------------------------------------


def test_api_tokens_lifecycle(backend):
    created = backend.call(ADMIN, "create-token", {"name": "front-desk"})
    assert created["name"] == "front-desk" and created["token"].startswith("ck_")
    listed = backend.call(ADMIN, "list-tokens", {})["tokens"]
    assert [t["name"] for t in listed] == ["front-desk"]
    assert created["token"] not in json.dumps(listed)
    assert created["token"] not in "\n".join(dump(backend.db_path))  # only a hash is kept
    refused(
        backend,
        ADMIN,
        "create-token",
        {"name": "front-desk"},
        ConflictError,
        "token_exists",
        "name",
    )
    assert backend.call(ADMIN, "revoke-token", {"name": "front-desk"}) == {
        "name": "front-desk",
        "revoked": True,
    }
    refused(
        backend,
        ADMIN,
        "revoke-token",
        {"name": "front-desk"},
        NotFoundError,
        "token_not_found",
        "name",
    )
    again = backend.call(ADMIN, "create-token", {"name": "front-desk"})
    assert again["token"] != created["token"]
    assert verify(backend.engine, created["token"]) is None  # revoked stays revoked
    assert verify(backend.engine, again["token"]) == Caller("front-desk", "operate")
    refused(
        backend,
        ADMIN,
        "create-token",
        {"name": "front desk!"},
        ValidationError,
        "invalid_name",
        "name",
    )


def test_a_token_has_the_scope_it_was_made_with(backend):
    for name, scope in (("report", "read"), ("desk", "operate"), ("ops", "admin")):
        created = backend.call(ADMIN, "create-token", {"name": name, "scope": scope})
        assert created["scope"] == scope
        assert verify(backend.engine, created["token"]) == Caller(name, scope)
    desk = backend.call(ADMIN, "create-token", {"name": "default"})
    assert desk["scope"] == "operate" and verify(backend.engine, desk["token"]).scope == "operate"
    listed = {t["name"]: t["scope"] for t in backend.call(ADMIN, "list-tokens", {})["tokens"]}
    assert listed == {"report": "read", "desk": "operate", "ops": "admin", "default": "operate"}
    before = dump(backend.db_path)
    refused(
        backend,
        ADMIN,
        "create-token",
        {"name": "root", "scope": "root"},
        ValidationError,
        "invalid_scope",
        "scope",
    )
    assert dump(backend.db_path) == before


def test_tokens_made_before_scopes_become_operate(tmp_path):
    """A store from before schema v7: its tokens keep the checkout flow, and nothing more."""
    import hashlib
    import sqlite3

    from checkout_cli.backends.local import LocalBackend
    from checkout_cli.engine.schema import MIGRATIONS

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    for version in range(1, 7):
        MIGRATIONS[version](conn)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute(
        "INSERT INTO api_tokens (name, token_hash, created_at) VALUES (?, ?, ?)",
        (
            "front-desk",
            hashlib.sha256(b"ck_from_before_scopes").hexdigest(),
            "2026-01-01T00:00:00Z",
        ),
    )
    conn.commit()
    conn.close()
    local = LocalBackend(db, actor="test")
    try:
        assert verify(local.engine, "ck_from_before_scopes") == Caller("front-desk", "operate")
        listed = local.call(ADMIN, "list-tokens", {})["tokens"]
        assert [(t["name"], t["scope"]) for t in listed] == [("front-desk", "operate")]
    finally:
        local.close()


# ---- doctor ----------------------------------------------------------------------------------


def test_check_invariants_endpoint_on_a_healthy_store(backend):
    assert backend.call(ADMIN, "check-invariants", {}) == {
        "ok": True,
        "violations": [],
        "emails_sending": [],
        "smoke_runs": [],
    }
