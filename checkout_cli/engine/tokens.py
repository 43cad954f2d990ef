"""API tokens for ``checkout serve``: only a SHA-256 hash is stored; the token is shown once.

Tokens are 256 random bits, so a plain hash is as strong as a slow one here and keeps the
check per request cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, NamedTuple

from checkout_cli import requests
from checkout_cli.endpoints import OPERATE
from checkout_cli.engine.core import Engine
from checkout_cli.engine.paging import page
from checkout_cli.errors import ConflictError, NotFoundError
from checkout_cli.requests import MAX_LIST_LIMIT

TOKEN_PREFIX = "ck_"
DEFAULT_SCOPE = OPERATE  # the checkout flow: what phone staff, batch scripts and CI need


class Caller(NamedTuple):
    """Who an accepted token belongs to, and what it may do."""

    name: str
    scope: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, body: requests.CreateToken) -> dict[str, Any]:
    scope = body.scope or DEFAULT_SCOPE  # one of SCOPES: the request schema checks it
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.write() as conn:
        if conn.execute(
            "SELECT 1 FROM api_tokens WHERE name = ? AND revoked_at IS NULL", (body.name,)
        ).fetchone():
            raise ConflictError(
                "token_exists",
                f"a token named {body.name!r} exists",
                field="name",
                recovery="revoke it first, or pick another name",
            )
        conn.execute("DELETE FROM api_tokens WHERE name = ?", (body.name,))
        conn.execute(
            "INSERT INTO api_tokens (name, token_hash, created_at, scope) VALUES (?, ?, ?, ?)",
            (body.name, _hash(token), engine.now(), scope),
        )
    return {"name": body.name, "scope": scope, "token": token}


def list_tokens(engine: Engine, body: requests.Page) -> dict[str, Any]:
    sql = "SELECT name, scope, created_at, revoked_at FROM api_tokens"
    with engine.read() as conn:
        rows, paging = page(conn, sql, [], "name", body, default_limit=MAX_LIST_LIMIT)
    return {"tokens": [dict(r) for r in rows], **paging}


def revoke_token(engine: Engine, body: requests.NamedToken) -> dict[str, Any]:
    with engine.write() as conn:
        updated = conn.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (engine.now(), body.name),
        ).rowcount
    if not updated:
        raise NotFoundError("token_not_found", f"no active token named {body.name!r}", field="name")
    return {"name": body.name, "revoked": True}


def verify(engine: Engine, token: str) -> Caller | None:
    """Whose active token this is and its scope, or None. Constant-time on the hash comparison."""
    digest = _hash(token)
    row = engine.conn.execute(
        "SELECT name, scope, token_hash FROM api_tokens "
        "WHERE token_hash = ? AND revoked_at IS NULL",
        (digest,),
    ).fetchone()
    if row is None or not hmac.compare_digest(row["token_hash"], digest):
        return None
    return Caller(row["name"], row["scope"])
