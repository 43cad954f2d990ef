"""Shell completion of values, through click's own completion protocol on the real CLI: SKUs,
checkout tokens, API token names, setting keys and values, providers, --format; silent and
empty without a local store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ready_checkout


def complete(words: str, db: Path | None, **env: str) -> subprocess.CompletedProcess[str]:
    """What bash gets for the last word of ``words`` (a trailing space: a new empty word)."""
    parts = words.split(" ")
    environ = {
        **os.environ,
        "_CHECKOUT_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
        **env,
    }
    environ.pop("CHECKOUT_DB", None)
    if db is not None:
        environ["CHECKOUT_DB"] = str(db)
    return subprocess.run(
        [sys.executable, "-m", "checkout_cli"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def offered(words: str, db: Path | None, **env: str) -> list[str]:
    done = complete(words, db, **env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout.split()


def test_skus_complete_from_the_store_active_only(backend, db_path):
    backend.call(
        "product-catalog",
        "upsert-product",
        {"sku": "LENS-OLD-1", "name": "Gone", "price_cents": 1, "status": "archived"},
    )
    assert offered("checkout cart add LENS-", db_path) == [
        "LENS-DAILY-30",
        "LENS-MONTH-6",
        "LENS-MULTI-6",
        "LENS-TORIC-6",
    ]
    assert offered("checkout products show LENS-T", db_path) == ["LENS-TORIC-6"]
    assert offered("checkout products show lens-t", db_path) == []  # as the shell matches
    assert offered("checkout set-line-meta chk_x LENS-D", db_path) == ["LENS-DAILY-30"]
    assert offered("checkout cart add LENS_", db_path) == []  # `_` is no wildcard
    assert offered("checkout cart add ", db_path)[:2] == ["CASE-TRAVEL", "GIFT-CARD-25"]


def test_checkout_tokens_complete_latest_first(backend, db_path):
    first = ready_checkout(backend)
    second = ready_checkout(backend)
    assert offered("checkout status chk_", db_path) == [second, first]
    assert offered(f"checkout inspect {first[:8]}", db_path) == [first]
    assert offered(f"checkout complete-checkout {second}", db_path) == [second]


def test_api_token_names_complete_for_revoke(backend, db_path):
    for name in ("front-desk", "front-office"):
        backend.call("checkout-admin", "create-token", {"name": name})
    backend.call("checkout-admin", "revoke-token", {"name": "front-office"})
    assert offered("checkout tokens revoke front", db_path) == ["front-desk"]


def test_setting_keys_and_their_allowed_values(backend, db_path):
    assert offered("checkout settings set smtp_", db_path) == [
        "smtp_host",
        "smtp_port",
        "smtp_starttls",
        "smtp_ssl",
        "smtp_user",
    ]
    assert offered("checkout settings unset payment_", db_path) == [
        "payment_redirect_url",
        "payment_webhook_url",
    ]
    assert offered("checkout settings set email_transport ", db_path) == ["file", "smtp"]
    assert offered("checkout settings set auto_complete_paid t", db_path) == ["true"]
    assert offered("checkout settings set shop_name ", db_path) == []  # free text


@pytest.mark.parametrize(
    "words, values",
    [
        ("checkout create-payment chk_x --provider ", ["stripe", "mollie", "invoice"]),
        ("checkout orders list --format ", ["table", "csv", "json"]),
        ("checkout products list --format c", ["csv"]),
        ("checkout orders list --status ", ["pending", "paid", "cancelled", "completed"]),
        ("checkout checkouts list --status c", ["completable", "completed", "cancelled"]),
        ("checkout outbox list --status s", ["sending", "sent"]),
        ("checkout set-payment chk_x --status ", ["paid", "pending"]),
        ("checkout smoke --provider m", ["mollie"]),
    ],
)
def test_choice_values_complete(db_path, words, values):
    assert offered(words, db_path) == values


def test_without_a_local_store_nothing_is_offered_and_nothing_is_made(tmp_path):
    missing = tmp_path / "none" / "shop.db"
    assert offered("checkout cart add LENS-", missing) == []
    assert not missing.exists() and not missing.parent.exists()
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    assert offered("checkout status chk_", broken) == []
    assert broken.read_bytes() == b"this is not a database" * 100


def test_a_remote_store_is_not_asked(db_path, backend):
    remote = {"CHECKOUT_REMOTE": "http://127.0.0.1:9", "CHECKOUT_PROJECT": "shop-nl"}
    assert offered("checkout cart add LENS-", db_path, **remote) == []
    assert offered("checkout --remote http://127.0.0.1:9 status chk_", db_path) == []
    assert offered("checkout settings set smtp_s", db_path, **remote) == [
        "smtp_starttls",
        "smtp_ssl",
    ]
