"""Refund states come back from the providers: Stripe's refund and charge events, Mollie's
payment webhook (the payment and its refunds fetched again), and reconcile move a refund from
``pending`` to ``succeeded`` or ``failed`` — once, however often the news arrives."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ready_checkout
from tests.fakes.fake_mollie import FakeMollie
from tests.fakes.fake_stripe import FakeStripe
from tests.paylink_helpers import (
    FLOW,
    WEBHOOK_SECRET,
    reconcile,
    rows,
    shop_fixture,  # noqa: F401
)
from tests.serve_helpers import invariant_violations


def pending_refund(local: Any, fake: FakeStripe | FakeMollie, provider: str) -> str:
    """A paid checkout cancelled with --force: its payment refunded, the refund pending.
    Returns the provider's refund id."""
    token = ready_checkout(local)
    co = local.call(FLOW, "create-payment", {"checkout_token": token, "provider": provider})
    fake.mark_paid(co["payment"]["provider_payment_id"])
    if isinstance(fake, FakeStripe):
        fake.refund_status = "pending"  # not a card: settles later
    local.call(FLOW, "cancel-checkout", {"checkout_token": token, "force": True, "reason": "x"})
    (refund,) = rows(
        local,
        "SELECT r.* FROM refunds r JOIN checkouts c ON c.id = r.checkout_id WHERE c.token = ?",
        (token,),
    )
    assert refund["status"] == "pending" and refund["provider_refund_id"]
    return str(refund["provider_refund_id"])


def refund_state(local: Any, refund_id: str) -> tuple[str, int]:
    """The refund's status, and how many times a result was recorded for it."""
    (row,) = rows(local, "SELECT * FROM refunds WHERE provider_refund_id = ?", (refund_id,))
    changes = rows(
        local,
        "SELECT kind FROM events WHERE checkout_id = ? AND kind IN ('refund_succeeded', "
        "'refund_failed') AND json_extract(detail, '$.provider_refund_id') = ?",
        (row["checkout_id"], refund_id),
    )
    return row["status"], len(changes)


def post_stripe(url: str, fake: FakeStripe, payload: str) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": fake.sign(payload, WEBHOOK_SECRET)},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


# -- Stripe ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "embed", "settled", "expected"),
    [
        ("refund.updated", False, "succeeded", "succeeded"),
        ("charge.refund.updated", False, "succeeded", "succeeded"),
        ("charge.refunded", False, "succeeded", "succeeded"),  # no refunds list (2022-11-15+)
        ("charge.refunded", True, "succeeded", "succeeded"),  # the list embedded
        ("refund.failed", False, "failed", "failed"),
        ("refund.updated", False, "canceled", "failed"),
    ],
)
def test_stripe_refund_event_moves_a_pending_refund_once(shop, event, embed, settled, expected):
    local, url, stripe_fake, _ = shop
    refund_id = pending_refund(local, stripe_fake, "stripe")
    stripe_fake.set_refund_status(refund_id, settled)
    payload = stripe_fake.refund_event_payload(
        refund_id, event, previous={"status": "pending"}, embed_refunds=embed
    )
    first = post_stripe(url, stripe_fake, payload)
    assert first == {"handled": True, "refunds_updated": 1}
    second = post_stripe(url, stripe_fake, payload)  # Stripe delivers it again
    assert second == {"handled": True, "refunds_updated": 0}
    assert refund_state(local, refund_id) == (expected, 1)
    reconcile(local)
    assert refund_state(local, refund_id) == (expected, 1)
    assert_settled(local, expected)


def assert_settled(local: Any, expected: str) -> None:
    """Succeeded: all is well. Failed: the cancelled checkout's money is kept, and doctor
    and reconcile say so (a stray whose refund failed, to refund again)."""
    violations = invariant_violations(local.db_path)
    if expected == "succeeded":
        assert violations == []
        return
    assert [v["invariant"] for v in violations] == [7]
    assert "a refund of it failed" in violations[0]["message"]
    (finding,) = reconcile(local)["findings"]
    assert finding["code"] == "stray_paid_payment"


def test_stripe_event_before_the_refund_settles_changes_nothing(shop):
    local, url, stripe_fake, _ = shop
    refund_id = pending_refund(local, stripe_fake, "stripe")
    payload = stripe_fake.refund_event_payload(refund_id, "refund.created")
    assert post_stripe(url, stripe_fake, payload) == {"handled": True, "refunds_updated": 0}
    assert refund_state(local, refund_id) == ("pending", 0)


def test_stripe_event_body_is_not_trusted(shop):
    """A signed event saying "succeeded" while Stripe says pending: the refund stays pending."""
    local, url, stripe_fake, _ = shop
    refund_id = pending_refund(local, stripe_fake, "stripe")
    stripe_fake.set_refund_status(refund_id, "succeeded")
    payload = stripe_fake.refund_event_payload(refund_id, "refund.updated")
    stripe_fake.set_refund_status(refund_id, "pending")
    post_stripe(url, stripe_fake, payload)
    assert refund_state(local, refund_id) == ("pending", 0)


def test_stripe_event_for_a_refund_made_elsewhere_is_acknowledged(shop):
    local, url, stripe_fake, _ = shop
    refund_id = pending_refund(local, stripe_fake, "stripe")
    payload = stripe_fake.refund_event_payload(refund_id, "refund.updated").replace(
        refund_id, "re_madeInTheDashboard000000"
    )
    assert post_stripe(url, stripe_fake, payload) == {"handled": True, "refunds_updated": 0}
    assert refund_state(local, refund_id) == ("pending", 0)


def test_forged_stripe_refund_event_is_refused(shop):
    local, url, stripe_fake, _ = shop
    refund_id = pending_refund(local, stripe_fake, "stripe")
    stripe_fake.set_refund_status(refund_id, "succeeded")
    payload = stripe_fake.refund_event_payload(refund_id, "refund.updated")
    assert stripe_fake.deliver(f"{url}/webhooks/stripe", payload, "whsec_wrong") == 401
    assert refund_state(local, refund_id) == ("pending", 0)


def test_reconcile_settles_pending_stripe_refunds(shop):
    local, _, stripe_fake, _ = shop
    refund_id = pending_refund(local, stripe_fake, "stripe")
    stripe_fake.set_refund_status(refund_id, "succeeded")
    changes = reconcile(local)["changes"]
    assert [c["action"] for c in changes] == ["refund succeeded"]
    assert refund_state(local, refund_id) == ("succeeded", 1)
    assert reconcile(local)["changes"] == []


# -- Mollie ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("settled", "expected"), [("refunded", "succeeded"), ("failed", "failed")])
def test_mollie_payment_webhook_brings_its_refunds_once(shop, settled, expected):
    local, _, _, mollie = shop
    refund_id = pending_refund(local, mollie, "mollie")
    mollie.settle_refund(refund_id, settled, notify=True)  # Mollie calls the payment's webhook
    assert mollie.webhooks_sent[-1][2] == 200
    payment_id = mollie.refunds[refund_id]["paymentId"]
    assert mollie.fire_webhook(payment_id) == 200  # and again
    assert refund_state(local, refund_id) == (expected, 1)
    listed = [r for r in mollie.requests if refunds_listed(r.method, r.path, payment_id)]
    assert len(listed) == 1  # the second found no refund pending: nothing to ask about
    reconcile(local)
    assert refund_state(local, refund_id) == (expected, 1)
    assert_settled(local, expected)


def refunds_listed(method: str, path: str, payment_id: str) -> bool:
    return method == "GET" and urlsplit(path).path == f"/v2/payments/{payment_id}/refunds"


def test_mollie_webhook_before_the_refund_settles_changes_nothing(shop):
    local, _, _, mollie = shop
    refund_id = pending_refund(local, mollie, "mollie")
    payment_id = mollie.refunds[refund_id]["paymentId"]
    assert mollie.fire_webhook(payment_id) == 200
    assert refund_state(local, refund_id) == ("pending", 0)
    listed = [r for r in mollie.requests if refunds_listed(r.method, r.path, payment_id)]
    assert len(listed) == 1


def test_reconcile_settles_pending_mollie_refunds(shop):
    local, _, _, mollie = shop
    refund_id = pending_refund(local, mollie, "mollie")
    mollie.settle_refund(refund_id, "refunded")  # no webhook reached us
    changes = reconcile(local)["changes"]
    assert [c["action"] for c in changes] == ["refund succeeded"]
    assert refund_state(local, refund_id) == ("succeeded", 1)
