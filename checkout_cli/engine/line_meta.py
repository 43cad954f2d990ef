"""Line meta: versioned meta definitions, set-line-meta on checkout lines, reading it back.

Values are validated by ``checkout_cli.metadefs`` against the definition's current version
with its config sources resolved (the product's config, the settings' named lists), and
stored normalized on the checkout line as ``{def_key: {field: value}}``. Completion copies
the stored JSON text to the order line unchanged.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli import metadefs, requests
from checkout_cli.engine import catalog, events, settings
from checkout_cli.engine.checkout_records import (
    checkout_object,
    load_checkout,
    refuse_unless_open,
    with_checkout,
)
from checkout_cli.engine.core import Engine, dumps, loads
from checkout_cli.engine.meta_definitions import definition_object, load_definition
from checkout_cli.engine.orders import load_order
from checkout_cli.engine.paging import page
from checkout_cli.errors import ConflictError, NotFoundError, ValidationError
from checkout_cli.requests import MAX_LIST_LIMIT


def upsert_meta_definition(engine: Engine, body: requests.UpsertMetaDefinition) -> dict[str, Any]:
    definition = metadefs.check_definition(body.model_dump(exclude_none=True))
    with engine.write() as conn:
        current = conn.execute(
            "SELECT * FROM meta_definitions WHERE def_key = ? ORDER BY version DESC LIMIT 1",
            (definition["def_key"],),
        ).fetchone()
        fields = dumps(definition["fields"])
        if (
            current is not None
            and current["fields"] == fields
            and current["title"] == definition["title"]
        ):
            return {**definition_object(current), "changed": False}
        version = current["version"] + 1 if current else 1
        conn.execute(
            "INSERT INTO meta_definitions (def_key, version, title, fields, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (definition["def_key"], version, definition["title"], fields, engine.now()),
        )
        return {**load_definition(conn, definition["def_key"]), "changed": True}


def get_meta_definition(engine: Engine, body: requests.GetMetaDefinition) -> dict[str, Any]:
    with engine.read() as conn:
        definition = load_definition(conn, body.def_key)
        if sku := body.product_sku:
            product = catalog.load_product(conn, sku)
            definition = metadefs.resolve_sources(
                definition, loads(product["config"]) or {}, settings.read(conn, "lists")
            )
        return definition


def list_meta_definitions(engine: Engine, body: requests.Page) -> dict[str, Any]:
    sql = "SELECT DISTINCT def_key FROM meta_definitions"
    with engine.read() as conn:
        rows, paging = page(conn, sql, [], "def_key", body, default_limit=MAX_LIST_LIMIT)
        return {"definitions": [load_definition(conn, r["def_key"]) for r in rows], **paging}


def _line_for(
    conn: sqlite3.Connection, co: sqlite3.Row, sku: str, line_id: int | None
) -> sqlite3.Row:
    lines = conn.execute(
        "SELECT * FROM checkout_lines WHERE checkout_id = ? AND product_sku = ? ORDER BY line_no",
        (co["id"], sku),
    ).fetchall()
    if not lines:
        raise NotFoundError(
            "line_not_found", f"{sku} is not on checkout {co['token']}", field="product_sku"
        )
    if line_id is not None:
        for line in lines:
            if line["line_no"] == line_id:
                return line
        raise NotFoundError(
            "line_not_found",
            f"line {line_id} of {co['token']} is not {sku}",
            field="line_id",
            recovery="lines with this SKU: " + ", ".join(str(x["line_no"]) for x in lines),
        )
    if len(lines) > 1:
        raise ValidationError(
            "line_id_required",
            f"{sku} is on several lines",
            field="line_id",
            recovery="give --line-id, one of " + ", ".join(str(x["line_no"]) for x in lines),
        )
    return lines[0]


def set_line_meta(engine: Engine, body: requests.SetLineMeta) -> dict[str, Any]:
    def work(conn: sqlite3.Connection, co: sqlite3.Row) -> dict[str, Any]:
        refuse_unless_open(co)
        line = _line_for(conn, co, body.product_sku, body.line_id)
        product = catalog.load_product(conn, line["product_sku"])
        def_key = body.def_key
        stored = load_definition(conn, def_key)  # an unknown key is a 404, not "not allowed"
        allowed = [ref["def_key"] for ref in loads(product["meta_defs"]) or []]
        if def_key not in allowed:
            raise ValidationError(
                "meta_def_not_allowed",
                f"{product['sku']} does not take {def_key!r} meta",
                field="def_key",
                recovery="it takes: " + (", ".join(allowed) or "none"),
            )
        definition = metadefs.resolve_sources(
            stored,
            loads(product["config"]) or {},
            settings.read(conn, "lists"),
        )
        values = metadefs.check_values(definition, body.values, engine.clock().date())
        meta = loads(line["meta"]) or {}
        meta[def_key] = values
        conn.execute("UPDATE checkout_lines SET meta = ? WHERE id = ?", (dumps(meta), line["id"]))
        conn.execute("UPDATE checkouts SET updated_at = ? WHERE id = ?", (engine.now(), co["id"]))
        events.record(
            engine,
            conn,
            co["id"],
            "line_meta_set",
            detail={
                "line_id": line["line_no"],
                "product_sku": line["product_sku"],
                "def_key": def_key,
                "version": definition["version"],
            },
        )
        return checkout_object(conn, load_checkout(conn, co["token"]))

    return with_checkout(engine, body.checkout_token, work)


def missing_required_meta(conn: sqlite3.Connection, checkout_id: int) -> None:
    """Refuse completion while a line lacks meta its product requires."""
    lines = conn.execute(
        "SELECT l.line_no, l.product_sku, l.meta, p.meta_defs FROM checkout_lines l "
        "JOIN products p ON p.sku = l.product_sku WHERE l.checkout_id = ? ORDER BY l.line_no",
        (checkout_id,),
    ).fetchall()
    for line in lines:
        meta = loads(line["meta"]) or {}
        for ref in loads(line["meta_defs"]) or []:
            if ref.get("required") and ref["def_key"] not in meta:
                raise ConflictError(
                    "line_meta_missing",
                    f"line {line['line_no']} ({line['product_sku']}) needs {ref['def_key']}",
                    field="items",
                    recovery=f"set it with `checkout set-line-meta TOKEN {line['product_sku']} "
                    f"--def {ref['def_key']} FIELD=VALUE …`",
                )


def get_line_meta(engine: Engine, body: requests.GetLineMeta) -> dict[str, Any]:
    with engine.read() as conn:
        order = load_order(conn, body.order_id)
        rows = conn.execute(
            "SELECT line_no, product_sku, meta FROM order_lines "
            "WHERE order_id = ? ORDER BY line_no",
            (order["id"],),
        ).fetchall()
    def_key = body.def_key
    lines = []
    for row in rows:
        meta = loads(row["meta"]) or {}
        if def_key is not None:
            meta = {k: v for k, v in meta.items() if k == def_key}
        if meta:
            lines.append(
                {"line_id": row["line_no"], "product_sku": row["product_sku"], "meta": meta}
            )
    return {"order_id": order["order_id"], "order_number": order["order_number"], "lines": lines}
