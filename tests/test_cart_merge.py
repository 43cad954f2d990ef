"""merge-cart and link-visitor (engine/cart_merge.py): on LocalBackend, through a real
`checkout serve` with the same normalized answers, every refusal with nothing written, and
the CLI's `cart merge` / `cart link-visitor` / `cart show --visitor`."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from checkout_cli.engine.carts import MAX_LINE_QUANTITY
from checkout_cli.errors import CheckoutError, ConflictError, NotFoundError, ValidationError
from tests.conftest import dump, ready_checkout
from tests.engine_helpers import CART, add, cart_with, complete, invoice, refused
from tests.serve_helpers import served_fixture  # noqa: F401
from tests.store_rows import query
from tests.test_cli_flow import error_object, ok

LENS, CASE = "LENS-DAILY-30", "CASE-TRAVEL"


def merge(backend: Any, source: str, target: str) -> dict[str, Any]:
    body = {"source_cart_token": source, "target_cart_token": target}
    result: dict[str, Any] = backend.call(CART, "merge-cart", body)
    return result


def link(backend: Any, cart: str, visitor: str) -> dict[str, Any]:
    result: dict[str, Any] = backend.call(
        CART, "link-visitor", {"cart_token": cart, "visitor_id": visitor}
    )
    return result


def lines(cart: dict[str, Any]) -> list[tuple[str, int]]:
    return [(i["product_sku"], i["quantity"]) for i in cart["items"]]


def carts_row(db: Any, token: str) -> tuple[str, str | None, str | None]:
    """(status, merged_into's token, visitor_id) as stored."""
    [row] = query(
        db,
        "SELECT c.status, m.token, c.visitor_id FROM carts c "
        "LEFT JOIN carts m ON m.id = c.merged_into WHERE c.token = ?",
        (token,),
    )
    return row[0], row[1], row[2]


# ---- merge-cart --------------------------------------------------------------------------------


def test_merge_adds_the_source_lines_into_the_target_and_abandons_the_source(backend):
    source = cart_with(backend, [(LENS, 2), (CASE, 1)])
    target = cart_with(backend, [(LENS, 3)])
    merged = merge(backend, source, target)
    assert merged["cart_token"] == target
    assert merged["status"] == "active" and merged["already_merged"] is False
    assert lines(merged) == [(LENS, 5), (CASE, 1)]
    assert merged["subtotal_cents"] == sum(i["line_total_cents"] for i in merged["items"])
    assert carts_row(backend.db_path, source) == ("abandoned", target, None)
    gone = backend.call(CART, "get-cart", {"cart_token": source})
    assert gone["status"] == "abandoned"
    # An abandoned cart takes no more items.
    refused(
        backend,
        CART,
        "add-item",
        {"cart_token": source, "product_sku": LENS, "quantity": 1},
        ConflictError,
        "cart_not_active",
    )


def test_merging_again_answers_the_target_unchanged_with_already_merged(backend):
    source = cart_with(backend, [(LENS, 2)])
    target = cart_with(backend, [(CASE, 1)])
    first = merge(backend, source, target)
    before = dump(backend.db_path)
    again = merge(backend, source, target)
    assert dump(backend.db_path) == before
    assert again == {**first, "already_merged": True}


def test_an_empty_source_merges_into_an_unchanged_list_of_lines(backend):
    target = cart_with(backend, [(CASE, 1)])
    source = cart_with(backend, [(LENS, 1)])
    backend.call(CART, "clear-cart", {"cart_token": source})
    assert lines(merge(backend, source, target)) == [(CASE, 1)]
    assert carts_row(backend.db_path, source)[0] == "abandoned"


@pytest.fixture
def converted_cart(backend):
    token = ready_checkout(backend)
    invoice(backend, token)
    return complete(backend, token)["cart_token"]


def _usd(db: Any, token: str) -> None:
    query(db, "UPDATE carts SET currency = 'USD' WHERE token = ?", (token,))


def test_merge_refusals_write_nothing(backend, converted_cart):
    a = cart_with(backend, [(LENS, 1)])
    b = cart_with(backend, [(CASE, 1)])

    def refuse(source, target, cls, code, field=None):
        body = {"source_cart_token": source, "target_cart_token": target}
        error = refused(backend, CART, "merge-cart", body, cls, code)
        if field:
            assert error.field == field
        return error

    refuse(a, a, ValidationError, "same_cart", "source_cart_token")
    refuse("cart_nope", b, NotFoundError, "cart_not_found")
    refuse(a, "cart_nope", NotFoundError, "cart_not_found")
    refuse(a, converted_cart, ConflictError, "cart_not_active", "cart_token")
    refuse(converted_cart, b, ConflictError, "cart_not_active", "source_cart_token")
    # A source merged into another cart is not merged again elsewhere.
    c = cart_with(backend, [(LENS, 1)])
    merge(backend, c, b)
    refuse(c, a, ConflictError, "cart_not_active", "source_cart_token")
    # Currencies differ.
    usd = cart_with(backend, [(CASE, 1)])
    _usd(backend.db_path, usd)
    refuse(usd, a, ConflictError, "currency_mismatch")
    refuse(a, usd, ConflictError, "currency_mismatch")
    # A source being checked out keeps its lines.
    checking = cart_with(backend, [(LENS, 1)])
    backend.call("checkout-flow", "initiate-checkout", {"cart_token": checking})
    error = refuse(checking, a, ConflictError, "cart_has_open_checkout", "source_cart_token")
    assert "cancel-checkout" in (error.recovery or "")
    # Quantities add up past one line's bound: the whole merge is undone.
    big = cart_with(backend, [(CASE, 2), (LENS, MAX_LINE_QUANTITY)])
    refuse(big, a, ValidationError, "invalid_quantity")
    # Bad tokens are refused before the store is read.
    refuse("not a token", a, ValidationError, "invalid_token_format")


def test_merge_into_a_cart_with_an_open_checkout_is_allowed(backend):
    """Only the source's lines are frozen by a checkout; the target's checkout is a snapshot
    that initiate-checkout later reports changed."""
    target = cart_with(backend, [(CASE, 1)])
    backend.call("checkout-flow", "initiate-checkout", {"cart_token": target})
    source = cart_with(backend, [(LENS, 1)])
    assert lines(merge(backend, source, target)) == [(CASE, 1), (LENS, 1)]


# ---- link-visitor and get-cart by visitor ------------------------------------------------------


def test_link_visitor_sets_it_and_get_cart_finds_the_visitors_cart(backend):
    cart = cart_with(backend, [(LENS, 1)])
    assert backend.call(CART, "get-cart", {"cart_token": cart})["visitor_id"] is None
    linked = link(backend, cart, "visitor-42")
    assert linked["visitor_id"] == "visitor-42" and linked["cart_token"] == cart
    assert backend.call(CART, "get-cart", {"visitor_id": "visitor-42"}) == linked
    before = dump(backend.db_path)
    assert link(backend, cart, "visitor-42") == linked  # idempotent: nothing written
    assert dump(backend.db_path) == before


def test_linking_a_second_cart_unlinks_the_first(backend):
    first = cart_with(backend, [(LENS, 1)])
    second = cart_with(backend, [(CASE, 1)])
    link(backend, first, "v1")
    link(backend, second, "v1")
    assert backend.call(CART, "get-cart", {"cart_token": first})["visitor_id"] is None
    assert backend.call(CART, "get-cart", {"visitor_id": "v1"})["cart_token"] == second
    # A cart relinked to another visitor leaves the first visitor without one.
    link(backend, second, "v2")
    refused(
        backend,
        CART,
        "get-cart",
        {"visitor_id": "v1"},
        NotFoundError,
        "cart_not_found",
        "visitor_id",
    )


def test_a_merged_visitors_cart_is_no_longer_found_by_the_visitor(backend):
    source = cart_with(backend, [(LENS, 1)])
    target = cart_with(backend, [(CASE, 1)])
    link(backend, source, "guest-7")
    merge(backend, source, target)
    refused(backend, CART, "get-cart", {"visitor_id": "guest-7"}, NotFoundError, "cart_not_found")
    link(backend, target, "guest-7")
    assert lines(backend.call(CART, "get-cart", {"visitor_id": "guest-7"})) == [
        (CASE, 1),
        (LENS, 1),
    ]


@pytest.mark.parametrize(
    ("visitor", "code"),
    [
        ("", "missing_field"),
        (" v1", "invalid_visitor_id"),
        ("v1 ", "invalid_visitor_id"),
        ("a\tb", "invalid_visitor_id"),
        ("x" * 101, "invalid_visitor_id"),
        (7, "invalid_type"),
    ],
)
def test_link_visitor_refuses_a_bad_visitor_id(backend, visitor, code):
    cart = cart_with(backend, [(LENS, 1)])
    refused(
        backend,
        CART,
        "link-visitor",
        {"cart_token": cart, "visitor_id": visitor},
        ValidationError,
        code,
        "visitor_id",
    )


def test_link_visitor_accepts_its_bounds(backend):
    cart = cart_with(backend, [(LENS, 1)])
    for visitor in ("v", "x" * 100, "a b~!{}", str(uuid.uuid4())):
        assert link(backend, cart, visitor)["visitor_id"] == visitor


def test_link_visitor_and_get_cart_refusals(backend, converted_cart):
    refused(
        backend,
        CART,
        "link-visitor",
        {"cart_token": converted_cart, "visitor_id": "v"},
        ConflictError,
        "cart_not_active",
    )
    refused(
        backend,
        CART,
        "link-visitor",
        {"cart_token": "cart_nope", "visitor_id": "v"},
        NotFoundError,
        "cart_not_found",
    )
    refused(backend, CART, "get-cart", {}, ValidationError, "missing_field")
    cart = cart_with(backend, [(LENS, 1)])
    refused(
        backend,
        CART,
        "get-cart",
        {"cart_token": cart, "visitor_id": "v"},
        ValidationError,
        "invalid_value",
    )
    refused(backend, CART, "get-cart", {"visitor_id": "nobody"}, NotFoundError, "cart_not_found")


# ---- the same through `checkout serve` ---------------------------------------------------------


def _scenario(backend: Any) -> list[dict[str, Any]]:
    visitor = f"visitor-{uuid.uuid4().hex[:8]}"
    source = add(backend, LENS, 2)["cart_token"]
    add(backend, CASE, 1, source)
    target = add(backend, LENS, 1)["cart_token"]
    answers = [link(backend, source, visitor), link(backend, target, visitor)]
    answers.append(backend.call(CART, "get-cart", {"visitor_id": visitor}))
    answers += [merge(backend, source, target), merge(backend, source, target)]
    answers.append(backend.call(CART, "get-cart", {"cart_token": source}))
    return answers


def _normalized(answers: list[dict[str, Any]]) -> str:
    names: dict[str, str] = {}

    def name(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), f"<cart{len(names)}>")

    text = repr(answers)
    text = re.sub(r"cart_[A-Za-z0-9_\-]+", name, text)
    text = re.sub(r"visitor-[0-9a-f]{8}", "<visitor>", text)
    return text


def test_merge_and_link_give_the_same_answers_through_checkout_serve(backend, served):
    remote = served.remote()
    try:
        assert _normalized(_scenario(remote)) == _normalized(_scenario(backend))
    finally:
        remote.close()


def _store(db: Any) -> list[str]:
    """The served store's content but the server's remembered answers (Idempotency-Key)."""
    return [line for line in dump(db) if '"idempotent_requests"' not in line]


def _refused_over_http(remote: Any, db: Any, name: str, body: dict[str, Any]) -> CheckoutError:
    before = _store(db)
    with pytest.raises(CheckoutError) as info:
        remote.call(CART, name, body)
    assert _store(db) == before, f"{name} changed the served store"
    return info.value


def test_refusals_through_checkout_serve_write_nothing(served):
    remote = served.remote()
    try:
        a = add(remote, LENS, 1)["cart_token"]
        b = add(remote, CASE, 1)["cart_token"]
        checking = add(remote, LENS, 1)["cart_token"]
        remote.call("checkout-flow", "initiate-checkout", {"cart_token": checking})
        cases = [
            ("merge-cart", {"source_cart_token": a, "target_cart_token": a}, 422, "same_cart"),
            (
                "merge-cart",
                {"source_cart_token": checking, "target_cart_token": b},
                409,
                "cart_has_open_checkout",
            ),
            (
                "merge-cart",
                {"source_cart_token": "cart_nope", "target_cart_token": b},
                404,
                "cart_not_found",
            ),
            ("link-visitor", {"cart_token": a, "visitor_id": " x"}, 422, "invalid_visitor_id"),
            ("get-cart", {"visitor_id": "nobody-at-all"}, 404, "cart_not_found"),
        ]
        for name, body, status, code in cases:
            error = _refused_over_http(remote, served.db, name, body)
            assert (error.http_status, error.code) == (status, code), error.to_error_object()
    finally:
        remote.close()


# ---- the CLI -----------------------------------------------------------------------------------


def test_cli_merge_and_link_visitor(backend, cli):
    source = cart_with(backend, [(LENS, 2)])
    target = cart_with(backend, [(CASE, 1)])
    shown = cli("cart", "link-visitor", target, "visitor-9")
    assert shown.exit_code == 0, shown.stderr
    assert "visitor visitor-9" in shown.stdout
    merged = ok(cli("--json", "cart", "merge", source, target))
    assert merged["cart_token"] == target and merged["already_merged"] is False
    assert lines(merged) == [(CASE, 1), (LENS, 2)]
    again = cli("cart", "merge", source, target)
    assert again.exit_code == 0 and "already merged" in again.stdout
    by_visitor = ok(cli("--json", "cart", "show", "--visitor", "visitor-9"))
    assert by_visitor["cart_token"] == target and by_visitor["visitor_id"] == "visitor-9"


def test_cli_refusals_are_one_line_with_their_exit_code(backend, cli):
    a = cart_with(backend, [(LENS, 1)])
    before = dump(backend.db_path)
    assert error_object(cli("--json", "cart", "merge", a, a), 4)["code"] == "same_cart"
    assert error_object(cli("--json", "cart", "merge", a), 2)["code"] == "missing_input"
    assert error_object(cli("--json", "cart", "link-visitor", a, " v"), 4)["code"] == (
        "invalid_visitor_id"
    )
    assert error_object(cli("--json", "cart", "show", "--visitor", "nobody"), 3)["code"] == (
        "cart_not_found"
    )
    assert dump(backend.db_path) == before


def test_cli_help_shows_examples(cli):
    for command, example in (
        ("merge", "checkout cart merge cart_SOURCE cart_TARGET"),
        ("link-visitor", "checkout cart link-visitor cart_XXXX visitor-42"),
    ):
        result = cli("cart", command, "--help")
        assert result.exit_code == 0 and example in result.stdout
