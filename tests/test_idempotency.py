"""Idempotency keys on a real store, with two engines on one file standing for two server
workers: the claim rides in the request's own first write transaction, a duplicate waits or
gets the first answer, and a request that writes nothing claims nothing."""

from __future__ import annotations

import pytest

from checkout_cli.engine.core import Engine
from checkout_cli.engine.idempotency import IdempotentCall, Replay
from checkout_cli.errors import ConflictError

KEY, HASH = "front-desk:4f1c", "hash-of-the-request"
ANSWER = {"success": True, "result": {"cart_token": "cart_x"}}


@pytest.fixture
def workers(tmp_path):
    first, second = Engine(tmp_path / "shop.db"), Engine(tmp_path / "shop.db")
    yield first, second
    first.close()
    second.close()


def _write(engine: Engine, name: str) -> None:
    with engine.write() as conn:
        conn.execute("INSERT INTO settings (key, value) VALUES (?, '1')", (name,))


def _setting(engine: Engine, name: str) -> bool:
    return (
        engine.conn.execute("SELECT 1 FROM settings WHERE key = ?", (name,)).fetchone() is not None
    )


def test_the_claim_takes_no_transaction_of_its_own(workers):
    engine, _ = workers
    begun: list[str] = []
    engine.conn.set_trace_callback(lambda sql: begun.append(sql) if sql.startswith("BEGIN") else 0)
    call = IdempotentCall(engine, KEY, HASH)
    assert call.remembered() is None
    with call.claimed_by_first_write():
        _write(engine, "first_write")
    assert begun == ["BEGIN IMMEDIATE"] and call.claimed
    row = engine.conn.execute("SELECT status FROM idempotent_requests WHERE key = ?", (KEY,))
    assert row.fetchone()["status"] == "in_progress"
    call.remember(200, ANSWER)
    assert IdempotentCall(engine, KEY, HASH).remembered() == (200, ANSWER)


def test_a_duplicate_while_the_first_runs_is_told_to_wait_then_gets_its_answer(workers):
    first, second = workers
    call = IdempotentCall(first, KEY, HASH)
    with call.claimed_by_first_write():
        _write(first, "first_write")
    with pytest.raises(ConflictError) as caught:
        IdempotentCall(second, KEY, HASH).remembered()
    assert caught.value.code == "request_in_progress"
    call.remember(200, ANSWER)
    assert IdempotentCall(second, KEY, HASH).remembered() == (200, ANSWER)
    with pytest.raises(ConflictError) as reused:
        IdempotentCall(second, KEY, "another-request").remembered()
    assert reused.value.code == "idempotency_key_reused"


def test_a_duplicate_past_the_lookup_meets_the_claim_in_its_first_write(workers):
    first, second = workers
    late = IdempotentCall(second, KEY, HASH)
    assert late.remembered() is None  # looked before the first request claimed
    running = IdempotentCall(first, KEY, HASH)
    with running.claimed_by_first_write():
        _write(first, "first_write")
    with pytest.raises(ConflictError) as caught, late.claimed_by_first_write():
        _write(second, "duplicate_write")
    assert caught.value.code == "request_in_progress"
    assert not _setting(second, "duplicate_write") and not late.claimed
    running.remember(200, ANSWER)
    with pytest.raises(Replay) as replay, late.claimed_by_first_write():
        _write(second, "duplicate_write")
    assert replay.value.answer == (200, ANSWER)
    assert not _setting(second, "duplicate_write")


def test_a_request_whose_first_write_rolls_back_leaves_no_claim(workers):
    engine, other = workers
    call = IdempotentCall(engine, KEY, HASH)
    with pytest.raises(ConflictError), call.claimed_by_first_write(), engine.write() as conn:
        conn.execute("INSERT INTO settings (key, value) VALUES ('half_done', '1')")
        raise ConflictError("checkout_expired", "too late")
    assert not call.claimed
    assert other.conn.execute("SELECT COUNT(*) FROM idempotent_requests").fetchone()[0] == 0
    call.forget()  # nothing to release
    failure = {"success": False, "error_object": {"code": "checkout_expired"}}
    call.remember(409, failure)
    assert IdempotentCall(other, KEY, HASH).remembered() == (409, failure)


def test_a_request_that_writes_nothing_keeps_a_duplicates_answer(workers):
    first, second = workers
    idle = IdempotentCall(first, KEY, HASH)
    with idle.claimed_by_first_write():
        pass  # e.g. "already completed": nothing to write
    busy = IdempotentCall(second, KEY, HASH)
    with busy.claimed_by_first_write():
        _write(second, "did_write")
    busy.remember(200, ANSWER)
    idle.remember(200, {"success": True, "result": {"already_completed": True}})
    assert IdempotentCall(first, KEY, HASH).remembered() == (200, ANSWER)


def test_forget_releases_only_a_committed_claim(workers):
    engine, other = workers
    call = IdempotentCall(engine, KEY, HASH)
    with call.claimed_by_first_write():
        _write(engine, "first_write")
    call.forget()  # the request then failed in a way worth retrying
    assert IdempotentCall(other, KEY, HASH).remembered() is None


def test_a_duplicate_refused_by_the_claim_keeps_no_answer(tmp_path, monkeypatch):
    """Two server workers: B looks up the key before A claims it, meets A's claim in its first
    write (409 request_in_progress), and A then fails in a way worth retrying (claim released)
    before B would remember anything. B's 409 must not become the key's answer: a retry runs."""
    from checkout_cli.endpoints import get_endpoint
    from checkout_cli.engine import idempotency
    from checkout_cli.server.app import Service, _idempotent

    db = tmp_path / "shop.db"
    worker_a, worker_b = Service(db), Service(db)
    endpoint = get_endpoint("checkout-admin", "set-setting")
    body = {"key": "shop_name", "value": "Lens Shop Rotterdam"}
    key, scoped = "K-1", "front-desk:K-1"
    digest = idempotency.request_hash(endpoint.service, endpoint.name, body)
    first = IdempotentCall(worker_a.backend().engine, scoped, digest)

    def claim_after_b_looks(self):
        answer = real_remembered(self)
        if self.engine is worker_b.backend().engine and not first.claimed:
            with first.claimed_by_first_write():
                _write(first.engine, "a_first_write")  # A claims, still running
        return answer

    def a_fails_before_b_remembers(self, http_status, answer):
        first.forget()
        return real_remember(self, http_status, answer)

    real_remembered, real_remember = IdempotentCall.remembered, IdempotentCall.remember
    monkeypatch.setattr(IdempotentCall, "remembered", claim_after_b_looks)
    monkeypatch.setattr(IdempotentCall, "remember", a_fails_before_b_remembers)
    with pytest.raises(idempotency.KeyConflict) as caught:
        _idempotent(worker_b, "front-desk", key, endpoint, body)
    assert caught.value.code == "request_in_progress"
    monkeypatch.undo()
    first.forget()  # A's 5xx path, had B not met it in between
    retry = _idempotent(worker_b, "front-desk", key, endpoint, body)
    assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers
    settings = worker_a.backend().call("checkout-admin", "get-settings")["settings"]
    assert settings["shop_name"] == "Lens Shop Rotterdam"
