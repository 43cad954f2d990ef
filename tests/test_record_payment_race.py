"""The same bank transaction recorded from two processes at once: exactly one payment."""

from __future__ import annotations

import multiprocessing
from typing import Any

from tests.conftest import ready_checkout
from tests.engine_helpers import ORDERS, assert_invariants, complete, invoice, query

ROUNDS = 4


def _record(db: str, body: dict[str, Any], start: Any, answers: Any) -> None:
    from checkout_cli.backends.local import LocalBackend
    from checkout_cli.config import store_target
    from checkout_cli.errors import CheckoutError

    backend = LocalBackend(store_target(db), actor="racer")
    try:
        start.wait(30)
        try:
            result = backend.call(ORDERS, "record-payment", body)
            answers.put(("ok", result["already_recorded"], result["payment"]["payment_id"]))
        except CheckoutError as exc:  # pragma: no cover - would fail the test below
            answers.put(("error", exc.code, exc.message))
    finally:
        backend.close()


def test_same_bank_transaction_from_two_processes_is_recorded_once(backend):
    spawn = multiprocessing.get_context("spawn")
    for round_ in range(ROUNDS):
        token = ready_checkout(backend)
        invoice(backend, token)
        number = complete(backend, token)["order"]["order_number"]
        body = {
            "order_id": number,
            "amount_cents": 1500,
            "method": "bank_transfer",
            "reference": f"RACE-{round_}",
        }
        start, answers = spawn.Event(), spawn.Queue()
        racers = [
            spawn.Process(target=_record, args=(str(backend.db_path), body, start, answers))
            for _ in range(2)
        ]
        for racer in racers:
            racer.start()
        start.set()
        got = sorted(answers.get(timeout=60) for _ in racers)
        for racer in racers:
            racer.join(30)
            assert racer.exitcode == 0
        assert [g[0] for g in got] == ["ok", "ok"], got
        assert sorted(g[1] for g in got) == [False, True], got  # one recorded, one found it
        assert got[0][2] == got[1][2]  # the same payment
        rows = query(
            backend.db_path,
            "SELECT q.amount_cents FROM order_payments q JOIN orders o ON o.id = q.order_id "
            "WHERE o.order_number = ?",
            (number,),
        )
        assert rows == [(1500,)]
        mails = query(
            backend.db_path,
            "SELECT COUNT(*) FROM outbox x JOIN orders o ON o.id = x.order_id "
            "WHERE o.order_number = ? AND x.kind LIKE 'payment_received:%'",
            (number,),
        )
        assert mails == [(1,)]
        order = backend.call(ORDERS, "get-order", {"order_id": number})
        assert order["amount_paid_cents"] == 1500
    assert_invariants(backend.db_path)
