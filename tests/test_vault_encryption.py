"""The vault at rest: sealed with AES-GCM under a key kept outside the store, bound to its store
and name; a missing, wrong or exposed key is a clear error; key rotation survives a crash at
any step; a store from before encryption is sealed on upgrade, with no plaintext left behind."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from checkout_cli.engine.schema import MIGRATIONS, SCHEMA_VERSION
from checkout_cli.engine.vault import secret
from checkout_cli.engine.vault_keys import KEY_ENV, key_file
from checkout_cli.errors import ConflictError
from tests.conftest import WATCH, WatchedBackend, encodings, ready_checkout
from tests.engine_helpers import ADMIN, query

SMTP_PASSWORD = WATCH.secret("smtp-vault-at-rest-Pa55-4e8d21c0")
STRIPE_KEY = WATCH.secret("sk_test_51VaultAtRest0abcdefghijklmnopqrstuv")
MOLLIE_KEY = WATCH.secret("test_vault0at0rest0mollie0key0abcdefgh")
OLD_SMTP_PASSWORD = WATCH.secret("smtp-the-password-before-it-changed-77aa")
DELETED_KEY = WATCH.secret("sk_test_51Deleted0Before0The0Upgrade0xyz")
LONG_PIECE = "0123456789abcdef" * 4  # found in any page that holds part of LONG_SECRET
LONG_SECRET = WATCH.secret("long-" + LONG_PIECE * 60)  # spills to overflow pages
PLAIN_B64 = base64.b64encode(f"\0shop\0{SMTP_PASSWORD}".encode()).decode()
WEBHOOK_SECRET = WATCH.secret("whsec_short0replacement0for0the0long0one")


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def set_secrets(backend, values: dict[str, str]) -> None:
    for name, value in values.items():
        backend.call(ADMIN, "set-vault", {"name": name, "value": value})


def file_bytes(db: Path) -> bytes:
    """The store as it lies on disk: the database file and its WAL, if any."""
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


def assert_nowhere_in(data: bytes, *secrets: str) -> None:
    for value in secrets:
        for form in encodings(value):
            assert form.encode() not in data, f"the store's file holds a form of {value[:8]}…"


def error_of(result) -> dict:
    assert "Traceback" not in result.stderr
    return json.loads(result.stderr)["error_object"]


# -- sealed at rest ----------------------------------------------------------------------------


def test_values_are_sealed_in_the_file_and_open_only_for_their_store_and_name(backend, db_path):
    set_secrets(backend, {"smtp_password": SMTP_PASSWORD, "stripe_secret_key": STRIPE_KEY})
    conn = backend.engine.conn
    assert secret(conn, "smtp_password") == SMTP_PASSWORD
    assert secret(conn, "stripe_secret_key") == STRIPE_KEY
    assert secret(conn, "mollie_api_key") is None
    assert_nowhere_in(file_bytes(db_path), SMTP_PASSWORD, STRIPE_KEY)

    # A sealed value copied onto another entry does not open there.
    conn.execute(
        "UPDATE vault SET value = (SELECT value FROM vault WHERE name = 'smtp_password') "
        "WHERE name = 'stripe_secret_key'"
    )
    with pytest.raises(ConflictError) as caught:
        secret(conn, "stripe_secret_key")
    assert caught.value.code == "vault_value_unreadable"
    assert "vault set stripe_secret_key" in (caught.value.recovery or "")
    assert secret(conn, "smtp_password") == SMTP_PASSWORD


def test_a_value_copied_into_another_store_does_not_open_even_with_the_same_key(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, new_key())  # one key for both stores: only the binding differs
    first = WatchedBackend(tmp_path / "first.db", actor="test")
    second = WatchedBackend(tmp_path / "second.db", actor="test")
    try:
        set_secrets(first, {"mollie_api_key": MOLLIE_KEY})
        set_secrets(second, {"mollie_api_key": "test_placeholder0value0for0the0row"})
        [(sealed,)] = query(first.db_path, "SELECT value FROM vault")
        second.engine.conn.execute("UPDATE vault SET value = ?", (sealed,))
        assert secret(first.engine.conn, "mollie_api_key") == MOLLIE_KEY
        with pytest.raises(ConflictError) as caught:
            secret(second.engine.conn, "mollie_api_key")
        assert caught.value.code == "vault_value_unreadable"
    finally:
        first.close()
        second.close()


def test_the_key_file_is_private_and_outside_the_store(backend, cli, db_path):
    result = cli("vault", "set", "smtp_password", input=SMTP_PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    path = key_file(backend.engine.store_id)
    assert f"made the vault key file {path}" in result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.parent != db_path.parent
    assert SMTP_PASSWORD.encode() not in path.read_bytes()
    # The next value uses the same key and says nothing about a key file.
    again = cli("vault", "set", "stripe_secret_key", input=STRIPE_KEY + "\n")
    assert again.exit_code == 0 and "key file" not in again.stderr
    assert {r[0].split(":")[1] for r in query(db_path, "SELECT value FROM vault")} == {
        backend.call(ADMIN, "list-vault", {})["secrets"][0]["key_id"]
    }


def test_a_key_file_others_can_read_is_refused(backend, cli):
    set_secrets(backend, {"smtp_password": SMTP_PASSWORD})
    path = key_file(backend.engine.store_id)
    path.chmod(0o644)
    error = error_of(cli("--json", "vault", "set", "mollie_api_key", input=MOLLIE_KEY))
    assert (error["type"], error["code"]) == ("conflict", "vault_key_insecure")
    assert str(path) in error["message"] and "0644" in error["message"]
    assert f"chmod 600 {path}" in error["recovery"]
    with pytest.raises(ConflictError):
        secret(backend.engine.conn, "smtp_password")
    path.chmod(0o600)
    assert secret(backend.engine.conn, "smtp_password") == SMTP_PASSWORD


def test_a_store_in_the_key_directory_is_refused(tmp_path, monkeypatch):
    """The key never lies beside the store: a copy of the folder would carry both."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    local = WatchedBackend(tmp_path / "cfg" / "checkout-cli" / "vault-keys" / "shop.db")
    try:
        with pytest.raises(ConflictError) as caught:
            local.call(ADMIN, "set-vault", {"name": "smtp_password", "value": SMTP_PASSWORD})
        assert caught.value.code == "vault_key_beside_store"
        assert query(local.db_path, "SELECT COUNT(*) FROM vault") == [(0,)]
    finally:
        local.close()


# -- a missing or wrong key ------------------------------------------------------------------


def test_without_its_key_the_vault_names_where_the_key_is_expected(backend, cli, db_path):
    set_secrets(backend, {"stripe_secret_key": STRIPE_KEY, "smtp_password": SMTP_PASSWORD})
    path = key_file(backend.engine.store_id)
    kept = path.read_bytes()
    path.unlink()
    token = ready_checkout(backend)

    paying = cli("create-payment", token, "--provider", "stripe")
    assert paying.exit_code == 4
    assert paying.stderr.count("\n") == 1 and "Traceback" not in paying.stderr
    assert str(path) in paying.stderr and KEY_ENV in paying.stderr
    error = error_of(cli("--json", "create-payment", token, "--provider", "stripe"))
    assert (error["type"], error["code"]) == ("conflict", "vault_key_missing")
    assert "restore the key file" in error["recovery"]

    # Names (and which key each needs) still list without the key.
    listed = cli("--json", "vault", "list")
    assert listed.exit_code == 0, listed.stderr
    assert {s["name"] for s in listed.json()["secrets"] if s["set"]} == {
        "stripe_secret_key",
        "smtp_password",
    }
    # A new value would be sealed under a new key and strand the others: refused.
    refused = error_of(cli("--json", "vault", "set", "mollie_api_key", input=MOLLIE_KEY))
    assert refused["code"] == "vault_key_missing"
    assert not path.exists()
    assert query(db_path, "SELECT COUNT(*) FROM vault WHERE name = 'mollie_api_key'") == [(0,)]

    path.write_bytes(kept)
    path.chmod(0o600)
    assert secret(backend.engine.conn, "stripe_secret_key") == STRIPE_KEY


def test_a_lost_key_means_deleting_and_setting_again(backend, cli):
    set_secrets(backend, {"stripe_secret_key": STRIPE_KEY, "smtp_password": SMTP_PASSWORD})
    key_file(backend.engine.store_id).unlink()
    assert cli("vault", "delete", "stripe_secret_key").exit_code == 0  # needs no key
    # The only value left is the one replaced: a new key may seal it.
    result = cli("--json", "vault", "set", "smtp_password", input=SMTP_PASSWORD)
    assert result.exit_code == 0, result.stderr
    assert result.json()["new_key_file"] == str(key_file(backend.engine.store_id))
    assert secret(backend.engine.conn, "smtp_password") == SMTP_PASSWORD


def test_a_server_key_from_the_environment(backend, cli, monkeypatch):
    key = new_key()
    monkeypatch.setenv(KEY_ENV, key)
    set_secrets(backend, {"mollie_api_key": MOLLIE_KEY})
    assert not key_file(backend.engine.store_id).exists()  # the environment's key, no file
    assert secret(backend.engine.conn, "mollie_api_key") == MOLLIE_KEY

    monkeypatch.setenv(KEY_ENV, new_key())  # another store's key
    with pytest.raises(ConflictError) as caught:
        secret(backend.engine.conn, "mollie_api_key")
    assert caught.value.code == "vault_key_wrong"
    assert KEY_ENV in caught.value.message and caught.value.message.count(" k") >= 2
    monkeypatch.setenv(KEY_ENV, "not-a-key")
    error = error_of(cli("--json", "vault", "set", "smtp_password", input=SMTP_PASSWORD))
    assert (error["type"], error["code"]) == ("conflict", "vault_key_invalid")
    assert KEY_ENV in error["message"] and "openssl rand -base64 32" in error["recovery"]
    monkeypatch.setenv(KEY_ENV, key)
    assert secret(backend.engine.conn, "mollie_api_key") == MOLLIE_KEY


def test_cli_start_up_and_vault_list_do_not_load_cryptography(backend, db_path):
    set_secrets(backend, {"smtp_password": SMTP_PASSWORD})
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('cryptography' in sys.modules, file=sys.stderr))\n"
        "from checkout_cli.cli.app import main\n"
        f"sys.argv = ['checkout', '--db', {str(db_path)!r}, *sys.argv[1:]]\n"
        "main()\n"
    )
    for args in (["--help"], ["--json", "vault", "list"], ["--json", "settings", "show"]):
        run = subprocess.run(
            [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr
        assert run.stderr.strip().splitlines()[-1] == "False", args


# -- key rotation ------------------------------------------------------------------------------


def sealed_under(db: Path) -> set[str]:
    return {value.split(":")[1] for (value,) in query(db, "SELECT value FROM vault")}


def file_keys(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def test_rotate_key_reseals_every_value_and_retires_the_old_key(backend, cli, db_path):
    values = {"smtp_password": SMTP_PASSWORD, "stripe_secret_key": STRIPE_KEY}
    set_secrets(backend, values)
    path = key_file(backend.engine.store_id)
    [old_key] = file_keys(path)
    [old_id] = sealed_under(db_path)
    old_sealed = [v for (v,) in query(db_path, "SELECT value FROM vault")]

    result = cli("--json", "vault", "rotate-key")
    assert result.exit_code == 0, result.stderr
    rotated = result.json()
    assert rotated["retired"] == [old_id] and rotated["resealed"] == 2
    assert rotated["key_source"] == str(path)
    assert sealed_under(db_path) == {rotated["key_id"]} != {old_id}
    [new_key] = file_keys(path)
    assert new_key != old_key and stat.S_IMODE(path.stat().st_mode) == 0o600
    for name, value in values.items():
        assert secret(backend.engine.conn, name) == value
    # The values under the retired key are gone from the file, not just superseded.
    data = file_bytes(db_path)
    assert not [v for v in old_sealed if v.encode() in data]

    shown = cli("vault", "rotate-key")
    assert shown.exit_code == 0, shown.stderr
    assert f"retired: {rotated['key_id']}" in shown.stderr and "2 secret(s)" in shown.stderr


def test_rotate_key_with_keys_from_the_environment(backend, cli, db_path, monkeypatch):
    old, new = new_key(), new_key()
    monkeypatch.setenv(KEY_ENV, old)
    set_secrets(backend, {"mollie_api_key": MOLLIE_KEY})
    [old_id] = sealed_under(db_path)

    alone = cli("--json", "vault", "rotate-key")
    assert alone.exit_code == 2
    assert error_of(alone)["code"] == "vault_key_not_new"

    monkeypatch.setenv(KEY_ENV, f"{new},{old}")
    result = cli("vault", "rotate-key")
    assert result.exit_code == 0, result.stderr
    assert f"retired: {old_id}" in result.stderr and "drop the retired keys" in result.stderr
    monkeypatch.setenv(KEY_ENV, new)  # the operator drops OLD
    assert secret(backend.engine.conn, "mollie_api_key") == MOLLIE_KEY
    assert old_id not in sealed_under(db_path)
    assert not key_file(backend.engine.store_id).exists()


def test_rotate_key_is_refused_on_a_remote(cli):
    result = cli(
        "--remote", "http://127.0.0.1:9", "--project", "x", "--json", "vault", "rotate-key"
    )
    assert result.exit_code == 7
    assert error_of(result)["code"] == "local_only"


def test_a_read_that_meets_a_rotation_halfway_reads_again(backend, db_path, monkeypatch):
    """The value was read under the old key; the rotation then resealed it and retired that
    key before the key file was read: the reader reads the value again, under the new key."""
    from checkout_cli.engine import vault_keys
    from checkout_cli.engine.vault import rotate_key

    set_secrets(backend, {"smtp_password": SMTP_PASSWORD})
    real_load = vault_keys.load
    rotated: list[dict] = []

    def load_after_a_rotation(store_id, store_path):
        monkeypatch.setattr(vault_keys, "load", real_load)  # the rotation reads keys too
        other = WatchedBackend(db_path, actor="rotating")
        try:
            rotated.append(rotate_key(other.engine))
        finally:
            other.close()
        return real_load(store_id, store_path)

    monkeypatch.setattr(vault_keys, "load", load_after_a_rotation)
    assert secret(backend.engine.conn, "smtp_password") == SMTP_PASSWORD
    assert sealed_under(db_path) == {rotated[0]["key_id"]}


# Run in a child process that dies (os._exit: no cleanup, no rollback) at one step.
CUT_OFF = """
import os, sys
from checkout_cli.backends.local import LocalBackend
from checkout_cli.engine import vault, vault_cipher, vault_keys

db, point = sys.argv[1], sys.argv[2]
calls = []

def dies_on(call_number, real, after=False):
    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == call_number and not after:
            os._exit(9)
        result = real(*args, **kwargs)
        if len(calls) == call_number and after:
            os._exit(9)
        return result
    return step

if point == "new key written":
    vault_keys.save = dies_on(1, vault_keys.save, after=True)
elif point == "halfway through resealing":
    vault_cipher.seal = dies_on(2, vault_cipher.seal)
elif point == "resealed, old key not yet retired":
    vault_keys.save = dies_on(2, vault_keys.save)
vault.rotate_key(LocalBackend(db).engine)
"""


@pytest.mark.parametrize(
    ("point", "under_new_key"),
    [
        ("new key written", False),
        ("halfway through resealing", False),
        ("resealed, old key not yet retired", True),
    ],
)
def test_rotate_key_cut_off_at_any_step_leaves_every_value_readable(
    backend, db_path, point, under_new_key
):
    values = {
        "smtp_password": SMTP_PASSWORD,
        "stripe_secret_key": STRIPE_KEY,
        "mollie_api_key": MOLLIE_KEY,
    }
    set_secrets(backend, values)
    path = key_file(backend.engine.store_id)
    [old_id] = sealed_under(db_path)
    backend.close()

    died = subprocess.run(
        [sys.executable, "-c", CUT_OFF, str(db_path), point], capture_output=True, timeout=60
    )
    assert died.returncode == 9, died.stderr

    after = WatchedBackend(db_path, actor="test")
    try:
        assert len(file_keys(path)) == 2  # the new key and the old, side by side
        assert (sealed_under(db_path) != {old_id}) is under_new_key
        assert len(sealed_under(db_path)) == 1  # one transaction: all moved or none
        for name, value in values.items():
            assert secret(after.engine.conn, name) == value
        # Running it again finishes the job.
        from checkout_cli.engine.vault import rotate_key

        finished = rotate_key(after.engine)
        assert len(file_keys(path)) == 1 and sealed_under(db_path) == {finished["key_id"]}
        for name, value in values.items():
            assert secret(after.engine.conn, name) == value
        assert after.call(ADMIN, "check-invariants", {})["ok"] is True
    finally:
        after.close()


# -- the upgrade from a plaintext vault (schema 6) ---------------------------------------------


def make_v6_store(db: Path) -> None:
    """A store as release 6 left it: schema 6, plaintext vault values, some overwritten or
    deleted (on a SQLite whose secure_delete is off, its upstream default, so the old values
    linger in freed space), the latest writes still in the WAL (as a killed process leaves
    it). Made with the release's own migrations and its vault's SQL."""
    live = db.with_name("v6-live.db")
    conn = sqlite3.connect(live, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA secure_delete = OFF")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("BEGIN IMMEDIATE")
    for version in range(1, 7):
        MIGRATIONS[version](conn)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("COMMIT")

    def v6_set(name: str, value: str) -> None:
        conn.execute(
            "INSERT INTO vault (name, value, set_at) VALUES (?, ?, '2026-01-01T00:00:00Z') "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value, set_at = excluded.set_at",
            (name, value),
        )

    v6_set("smtp_password", OLD_SMTP_PASSWORD)
    v6_set("stripe_webhook_secret", LONG_SECRET)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # Deleted, its overflow pages go to the freelist, content and all; then more pages are
    # freed after them (remembered HTTP answers cleared), as a store in use frees pages.
    conn.execute("DELETE FROM vault WHERE name = 'stripe_webhook_secret'")
    for n in range(60):
        conn.execute(
            "INSERT INTO idempotent_requests (key, request_hash, status, response) "
            "VALUES (?, 'h', 'done', ?)",
            (f"old-{n}", "x" * 3000),
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("DELETE FROM idempotent_requests")
    v6_set("stripe_secret_key", DELETED_KEY)
    # Release 6 left the password's base64 in an email's last_error when a server echoed
    # AUTH PLAIN, and in the remembered HTTP answer of that send-outbox.
    leaked = f"SMTPAuthenticationError: (535, b'5.7.8 rejected: AUTH PLAIN {PLAIN_B64}')"
    conn.execute(
        "INSERT INTO outbox (kind, recipient, status, attempts) "
        "VALUES ('order_confirmation', 'anna@example.com', 'failed', 0)"
    )
    for attempt in range(1, 6):  # each retry's error replaces the last; the old ones linger
        conn.execute(
            "UPDATE outbox SET attempts = ?, last_error = ?",
            (attempt, leaked + " (retry)" * attempt),
        )
    conn.execute(
        "INSERT INTO idempotent_requests (key, request_hash, status, http_status, response) "
        "VALUES ('k1', 'h1', 'done', 200, ?)",
        (json.dumps({"success": True, "result": {"results": [{"error": leaked}]}}),),
    )
    conn.execute("INSERT INTO settings (key, value) VALUES ('smtp_user', '\"shop\"')")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # these reach the database file
    v6_set("smtp_password", SMTP_PASSWORD)
    v6_set("stripe_webhook_secret", WEBHOOK_SECRET)
    conn.execute("DELETE FROM vault WHERE name = 'stripe_secret_key'")
    v6_set("mollie_api_key", MOLLIE_KEY)
    for suffix in ("", "-wal"):  # copied while open: the WAL is kept, as after a crash
        shutil.copyfile(f"{live}{suffix}", f"{db}{suffix}")
    conn.close()
    live.unlink()


def test_the_upgrade_from_a_plaintext_vault_seals_it_and_leaves_no_plaintext(tmp_path):
    db = tmp_path / "shop.db"
    make_v6_store(db)
    before = file_bytes(db)
    assert SMTP_PASSWORD.encode() in before and OLD_SMTP_PASSWORD.encode() in before
    assert DELETED_KEY.encode() in before and before.count(LONG_PIECE.encode()) > 50
    assert PLAIN_B64.encode() in before
    assert before.count(PLAIN_B64.encode()) >= 2  # the current error and an older one

    upgraded = WatchedBackend(db, actor="test")
    try:
        conn = upgraded.engine.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert secret(conn, "smtp_password") == SMTP_PASSWORD
        assert secret(conn, "mollie_api_key") == MOLLIE_KEY
        assert secret(conn, "stripe_webhook_secret") == WEBHOOK_SECRET
        assert secret(conn, "stripe_secret_key") is None
        assert key_file(upgraded.engine.store_id).exists()
        assert_nowhere_in(
            file_bytes(db),
            SMTP_PASSWORD,
            OLD_SMTP_PASSWORD,
            MOLLIE_KEY,
            DELETED_KEY,
            LONG_PIECE,
            WEBHOOK_SECRET,
        )
        [(last_error,)] = query(db, "SELECT last_error FROM outbox")
        assert last_error.startswith("SMTPAuthenticationError: (535") and "[redacted]" in last_error
    finally:
        upgraded.close()
