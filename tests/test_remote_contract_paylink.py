"""Contract suite, create-payment-link: the same scenario on LocalBackend and on RemoteBackend
talking to a real `checkout serve`, both wired to the same fake Stripe and Mollie (real SDKs),
gives the same normalized transcript."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from checkout_cli.backends.local import LocalBackend
from checkout_cli.errors import ConflictError, NotFoundError, ValidationError
from tests.conftest import WATCH, load_fixtures
from tests.fakes.fake_mollie import FakeMollie
from tests.fakes.fake_stripe import FakeStripe
from tests.paylink_helpers import ORDERS, bank_transfer, cancel_order, configure
from tests.serve_helpers import Served, invariant_violations, prepare_store, serving
from tests.test_remote_contract import FLOW, Flow


class LinkFlow(Flow):
    """A Flow whose transcript also hides the providers' checkout pages (their addresses
    carry ids of the provider's own making)."""

    def ok(self, service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result = super().ok(service, name, body)
        step, shown = self.transcript[-1]
        if isinstance(shown, dict) and shown.get("redirect_url"):
            self.transcript[-1] = (step, {**shown, "redirect_url": "<redirect_url>"})
        return result

    def invoice_order(self) -> str:
        token = self.ready(("LENS-MONTH-6", 1))
        self.ok(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
        done = self.ok(FLOW, "complete-checkout", {"checkout_token": token})
        return str(done["order"]["order_number"])

    def link(self, number: str, provider: str) -> dict[str, Any]:
        return self.ok(ORDERS, "create-payment-link", {"order_id": number, "provider": provider})


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeStripe, FakeMollie]]:
    from tests.paylink_helpers import MOLLIE_KEY, STRIPE_KEY

    with FakeStripe(api_key=STRIPE_KEY) as stripe_fake, FakeMollie(api_key=MOLLIE_KEY) as mollie:
        yield stripe_fake, mollie


@pytest.fixture(scope="module")
def linked_server(
    tmp_path_factory: pytest.TempPathFactory, fakes: tuple[FakeStripe, FakeMollie]
) -> Iterator[Served]:
    """A served store of its own (the session's shared one has no provider keys)."""
    db = tmp_path_factory.mktemp("paylink-served") / "shop.db"
    token = prepare_store(db)
    local = LocalBackend(db, actor="test")
    try:
        configure(local, *fakes)
    finally:
        local.close()
    with serving(db, token, workers=2) as server:
        yield server
    WATCH.export_store(db)


@contextmanager
def open_backend(kind: str, served: Served, fakes: Any, tmp_path: Path) -> Iterator[Any]:
    if kind == "remote":
        remote = served.remote()
        try:
            yield remote, served.db
        finally:
            remote.close()
        return
    db = tmp_path / f"local-{len(list(tmp_path.glob('local-*.db')))}.db"
    local = LocalBackend(db, actor="test")
    load_fixtures(local)
    configure(local, *fakes)
    try:
        yield local, db
    finally:
        local.close()
        WATCH.export_store(db)


def payment_links(f: LinkFlow, stripe_fake: FakeStripe, mollie: FakeMollie) -> None:
    behind = LocalBackend(f.db, actor="test")  # the store itself, as a bank import would be
    try:
        # Stripe: made once, answered again, paid, then nothing is due
        number = f.invoice_order()
        link = f.link(number, "stripe")
        assert (link["status"], link["reused"]) == ("open", False)
        assert f.link(number, "stripe")["reused"] is True
        stripe_fake.mark_paid(link["provider_payment_id"])
        f.fails(
            ORDERS,
            "create-payment-link",
            {"order_id": number, "provider": "stripe"},
            ValidationError,
            "nothing_due",
            "order_id",
            http_status=422,
            exit_code=4,
        )
        shown = f.ok(ORDERS, "get-order", {"order_id": number})
        assert (shown["payment_status"], [p["method"] for p in shown["payments"]]) == (
            "paid",
            ["stripe"],
        )
        # Mollie: a part paid by bank meanwhile makes a new link for the rest
        number = f.invoice_order()
        first = f.link(number, "mollie")
        bank_transfer(behind, number, 500, f"BANK-{f.db.stem}-{number}")
        second = f.link(number, "mollie")
        assert second["replaced_provider_payment_id"] == first["provider_payment_id"]
        assert second["amount_cents"] == first["amount_cents"] - 500
        # refused
        cancel_order(behind, number)
        f.fails(
            ORDERS,
            "create-payment-link",
            {"order_id": number, "provider": "mollie"},
            ConflictError,
            "order_cancelled",
            "order_id",
            http_status=409,
            exit_code=4,
        )
        f.fails(
            ORDERS,
            "create-payment-link",
            {"order_id": "2099-999999", "provider": "stripe"},
            NotFoundError,
            "order_not_found",
            "order_id",
            http_status=404,
            exit_code=3,
        )
        f.fails(
            ORDERS,
            "create-payment-link",
            {"order_id": number, "provider": "paypal"},
            ValidationError,
            "unknown_provider",
            "provider",
            http_status=422,
            exit_code=4,
        )
    finally:
        behind.close()


SCENARIOS: dict[str, Callable[[LinkFlow, FakeStripe, FakeMollie], None]] = {
    "payment_links": payment_links
}
TRANSCRIPTS: dict[str, dict[str, list[tuple[str, Any]]]] = {}


def run_scenario(name: str, kind: str, served: Served, fakes: Any, tmp_path: Path) -> None:
    with open_backend(kind, served, fakes, tmp_path) as (backend, db):
        flow = LinkFlow(backend, db)
        SCENARIOS[name](flow, *fakes)
        assert invariant_violations(db) == []
    TRANSCRIPTS.setdefault(name, {})[kind] = flow.transcript


@pytest.mark.parametrize("kind", ["local", "remote"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_payment_link_scenario_same_on_both_backends(
    scenario: str, kind: str, linked_server: Served, fakes: Any, tmp_path: Path
) -> None:
    # Once per backend and process: the served store keeps this run's orders and payments,
    # so a second remote run of the scenario (run serially, -n 0) would meet its own.
    if kind not in TRANSCRIPTS.get(scenario, {}):
        run_scenario(scenario, kind, linked_server, fakes, tmp_path)
    other = "remote" if kind == "local" else "local"
    seen = TRANSCRIPTS[scenario]
    if other not in seen:  # run alone (-k): compare with a fresh run on the other backend
        run_scenario(scenario, other, linked_server, fakes, tmp_path)
    assert seen["remote"] == seen["local"]
