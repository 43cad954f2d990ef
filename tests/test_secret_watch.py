"""The suite-wide secret watch itself: it must see a secret in every form a leak can take."""

from __future__ import annotations

import base64
import json
import sqlite3

from tests.conftest import SecretWatch

PASSWORD = "smtp-watch-self-test-Pa55-90ab"


def watch() -> SecretWatch:
    fresh = SecretWatch()
    fresh.secret(PASSWORD)
    return fresh


def test_it_sees_the_raw_secret_and_every_base64_an_smtp_exchange_can_hold():
    for user in ("shop", "orders@lens.example", "x"):  # every offset of the password
        for text in (
            f"535 rejected {PASSWORD}",
            base64.b64encode(PASSWORD.encode()).decode(),  # LOGIN
            base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode(),  # PLAIN
            base64.b64encode(f"{user}\0{user}\0{PASSWORD}".encode()).decode(),  # with authzid
            base64.urlsafe_b64encode(f"{user}:{PASSWORD}".encode()).decode(),
            "SMTPAuthenticationError: (535, b'AUTH PLAIN "
            + base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
            + "')",
        ):
            seen = watch()
            seen.seen("a reply", text)
            assert len(seen.leaks) == 1, text


def test_it_reads_bytes_and_whole_stores(tmp_path):
    seen = watch()
    seen.seen("a file", b"\x00\x01" + PASSWORD.encode() + b"\xff")
    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE vault (name TEXT, value TEXT)")
    conn.execute("INSERT INTO vault VALUES ('smtp_password', ?)", (PASSWORD,))
    conn.commit()
    conn.close()
    seen.export_store(db)
    assert len(seen.leaks) == 3  # the bytes given, the file, the rows (the vault's too)


def test_it_stays_quiet_on_text_without_the_secret():
    seen = watch()
    seen.seen("an answer", json.dumps({"last_error": "535 rejected [redacted]"}))
    seen.seen("the redacted form", "AUTH PLAIN [redacted]")
    assert seen.leaks == []
