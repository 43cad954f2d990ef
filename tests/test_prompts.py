"""Prompts on a real pseudo-terminal (pexpect): `set-customer` with no flags asks for each
missing field (email checked as typed, country from a searchable list), and `cancel-checkout`
asks to confirm. The real program runs, as `python -m checkout_cli`, so CI's venv is used."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ready_checkout
from tests.terminal import BACKSPACE, Terminal, shown, starter
from tests.test_cli_flow import FLOW, status_of


def filtered(text: str) -> str:
    """A regex for the select list's filter line, ``/ TEXT...`` (colour codes between)."""
    return re.escape(text) + r"(?:\x1b\[[0-9;]*m)*\.\.\."


@pytest.fixture
def terminal(db_path, tmp_path):
    """``terminal("set-customer", token)``: the command on a fresh pseudo-terminal."""
    yield from starter(lambda *args: Terminal(db_path, tmp_path, *args, dimensions=(40, 120)))


def open_checkout(backend) -> str:
    """A checkout with no customer yet."""
    cart = backend.call(
        "shopping-cart", "add-item", {"product_sku": "LENS-DAILY-30", "quantity": 2}
    )["cart_token"]
    return backend.call(FLOW, "initiate-checkout", {"cart_token": cart})["checkout_token"]


@pytest.mark.parametrize(("search", "code"), [("Neth", "NL"), ("Germ", "DE")])
def test_set_customer_asks_for_each_field(backend, terminal, search, code):
    token = open_checkout(backend)
    t = terminal("set-customer", token)

    t.at("Customer email", "anna.example.com\r")
    # Refused as typed, with the reason; the answer is corrected in place.
    t.at(shown("is not an email address"), BACKSPACE * len("anna.example.com"))
    t.child.send("anna@example.com\r")
    t.at("Customer name", "Anna de Vries\r")
    t.at("Street and number", "Prinsengracht 263\r")
    t.at("Postal code", "1016 GV\r")
    t.at("City", "Amsterdam\r")
    t.at("Country", search)
    t.at(filtered(search), "\r")  # the filter is applied: take the first match
    assert t.finish() == 0, t.text

    co = status_of(backend, token)
    assert co["customer"] == {
        "email": "anna@example.com",
        "name": "Anna de Vries",
        "phone": None,
        "company": None,
    }
    address = co["shipping_address"]
    assert (address["line1"], address["postal_code"], address["city"], address["country"]) == (
        "Prinsengracht 263",
        "1016 GV",
        "Amsterdam",
        code,
    )
    assert co["billing_address"] == address
    # The status view is printed once the answers are in.
    assert token in t.text and "Anna de Vries" in t.text


def test_set_customer_asks_only_for_what_is_missing(backend, terminal):
    token = open_checkout(backend)
    t = terminal(
        "set-customer", token, "--email", "piet@example.com", "--name", "Piet", "--city", "Gouda"
    )
    t.at("Street and number", "Markt 1\r")
    t.at("Postal code", "2801 JG\r")
    t.at("Country", "Neth")
    t.at(filtered("Neth"), "\r")
    assert t.finish() == 0, t.text
    assert "Customer email" not in t.text and "City" not in t.text.split("Country")[0]
    co = status_of(backend, token)
    assert co["customer"]["email"] == "piet@example.com"
    assert (co["shipping_address"]["city"], co["shipping_address"]["country"]) == ("Gouda", "NL")


def test_no_prompts_with_no_input_on_a_terminal(backend, terminal, db_path):
    token = open_checkout(backend)
    t = terminal("--no-input", "set-customer", token)
    assert t.finish() == 2
    assert "error: missing --email" in t.text
    assert status_of(backend, token)["customer"] is None


def test_cancel_checkout_answer_no_keeps_it(backend, terminal):
    token = ready_checkout(backend)
    before = status_of(backend, token)
    t = terminal("cancel-checkout", token)
    t.at(re.escape(f"Cancel checkout {token}?"), "n")
    exit_code = t.finish()
    assert exit_code == 0, t.text  # declining is a choice, not a failure
    assert "not cancelled" in t.text
    assert status_of(backend, token) == before


def test_cancel_checkout_answer_yes_cancels(backend, terminal):
    token = ready_checkout(backend)
    t = terminal("cancel-checkout", token, "--reason", "customer changed their mind")
    t.at(re.escape(f"Cancel checkout {token}?"), "y")
    assert t.finish() == 0, t.text
    assert status_of(backend, token)["status"] == "cancelled"


def test_confirming_a_cancel_on_a_terminal_never_implies_force(backend, terminal):
    token = ready_checkout(backend)
    backend.call(
        FLOW,
        "set-payment",
        {"checkout_token": token, "provider": "bank", "reference": "NL-9", "status": "paid"},
    )
    t = terminal("cancel-checkout", token)
    t.at(re.escape(f"Cancel checkout {token}?"), "y")
    assert t.finish() == 5, t.text  # paid: refused; refunding is asked for with --force only
    assert "payment_already_paid" in t.text or "already paid" in t.text
    assert status_of(backend, token)["status"] == "completable"
    forced = terminal("cancel-checkout", token, "--force")
    forced.at(re.escape(f"Cancel checkout {token} even if paid"), "y")
    assert forced.finish() == 0, forced.text
    assert status_of(backend, token)["status"] == "cancelled"
