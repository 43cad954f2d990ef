"""Idempotency keys on a real store, with two engines on one file standing for two server
workers: the claim rides in the request's own first write transaction; atomic requests keep
claim, work and answer in one transaction; a claim names its owner and holds a lease, and a
stale one is taken over; answers expire after 24 hours and keep no secret."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import psutil
import pytest

from checkout_cli.engine import idempotency
from checkout_cli.engine.core import Engine, iso, utc_now
from checkout_cli.engine.idempotency import IdempotentCall, KeyConflict, Replay
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


def _row(engine: Engine, key: str = KEY):
    return engine.conn.execute("SELECT * FROM idempotent_requests WHERE key = ?", (key,)).fetchone()


def _claimed(engine: Engine, *, atomic: bool = False, name: str = "first_write") -> IdempotentCall:
    """A request whose first write (and with it the claim) committed, still running."""
    call = IdempotentCall(engine, KEY, HASH, atomic=atomic)
    with call.running():
        _write(engine, name)
    return call


def _stale_claim(engine: Engine, owner: str, lease_until: str) -> None:
    with engine.write() as conn:
        conn.execute(
            "INSERT INTO idempotent_requests (key, request_hash, status, owner, lease_until, "
            "created_at) VALUES (?, ?, 'in_progress', ?, ?, ?)",
            (KEY, HASH, owner, lease_until, engine.now()),
        )


def _finished_pid() -> tuple[int, float]:
    """The pid and start time of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    started = psutil.Process(child.pid).create_time()
    child.wait()
    return child.pid, started


# -- claims ride in the request's first write ---------------------------------------------------


def test_a_claim_takes_no_transaction_of_its_own_and_names_its_owner(workers):
    engine, _ = workers
    begun: list[str] = []
    engine.conn.set_trace_callback(lambda sql: begun.append(sql) if sql.startswith("BEGIN") else 0)
    call = IdempotentCall(engine, KEY, HASH, atomic=False)
    assert call.remembered() is None
    with call.running():
        _write(engine, "first_write")
    assert begun == ["BEGIN IMMEDIATE"]
    row = _row(engine)
    assert row["status"] == "in_progress"
    host, pid, started, attempt = row["owner"].split("/")
    assert (host, int(pid)) == (idempotency.socket.gethostname(), idempotency.os.getpid())
    assert float(started) == pytest.approx(psutil.Process().create_time(), abs=0.01)
    assert attempt
    lease = idempotency.parse_iso(row["lease_until"]) - idempotency.parse_iso(row["created_at"])
    assert lease == timedelta(seconds=2 * 20 + idempotency.LEASE_MARGIN_SECONDS)  # default 20 s


def test_an_atomic_request_commits_claim_work_and_answer_in_one_transaction(workers):
    engine, other = workers
    begun: list[str] = []
    engine.conn.set_trace_callback(lambda sql: begun.append(sql) if sql.startswith("BEGIN") else 0)
    call = IdempotentCall(engine, KEY, HASH, atomic=True)
    with call.running():
        _write(engine, "first_write")
        _write(engine, "second_write")  # nests in the first
        assert _row(other) is None and not _setting(other, "first_write")  # nothing seen yet
        call.remember(200, ANSWER)
    assert begun == ["BEGIN IMMEDIATE"]
    assert _row(other)["status"] == "done" and _setting(other, "second_write")
    assert IdempotentCall(other, KEY, HASH, atomic=True).remembered() == (200, ANSWER)


def test_an_atomic_request_that_dies_before_its_answer_leaves_nothing(workers):
    engine, other = workers
    call = IdempotentCall(engine, KEY, HASH, atomic=True)
    with pytest.raises(KeyboardInterrupt), call.running():
        _write(engine, "first_write")
        raise KeyboardInterrupt  # stands for the worker's end; a real kill: test_server_*
    assert _row(other) is None and not _setting(other, "first_write")
    assert IdempotentCall(other, KEY, HASH, atomic=True).remembered() is None


def test_a_refused_nested_write_rolls_back_alone_and_the_refusal_commits(workers):
    engine, other = workers
    call = IdempotentCall(engine, KEY, HASH, atomic=True)
    refusal = {"success": False, "error_object": {"code": "checkout_expired"}}
    with call.running():
        _write(engine, "expiry_committed")  # what the request legitimately did
        with pytest.raises(ConflictError), engine.write() as conn:
            conn.execute("INSERT INTO settings (key, value) VALUES ('refused_part', '1')")
            raise ConflictError("checkout_expired", "too late")
        call.remember(409, refusal)
    assert _setting(other, "expiry_committed") and not _setting(other, "refused_part")
    assert IdempotentCall(other, KEY, HASH, atomic=True).remembered() == (409, refusal)


def test_a_request_that_writes_nothing_claims_when_its_answer_is_kept(workers):
    engine, other = workers
    call = IdempotentCall(engine, KEY, HASH, atomic=False)
    with call.running():
        assert _row(other) is None  # reads only: no claim
        call.remember(200, ANSWER)
    assert IdempotentCall(other, KEY, HASH, atomic=False).remembered() == (200, ANSWER)


def test_a_request_that_writes_nothing_gets_a_duplicates_answer(workers):
    first, second = workers
    idle = IdempotentCall(first, KEY, HASH, atomic=False)
    busy = IdempotentCall(second, KEY, HASH, atomic=False)
    with busy.running():
        _write(second, "did_write")
        busy.remember(200, ANSWER)
    with pytest.raises(Replay) as replay, idle.running():
        idle.remember(200, {"success": True, "result": {"already_completed": True}})
    assert replay.value.answer == (200, ANSWER)
    assert IdempotentCall(first, KEY, HASH, atomic=False).remembered() == (200, ANSWER)


# -- duplicates, owners and leases --------------------------------------------------------------


def test_a_duplicate_while_the_first_runs_is_told_to_wait_then_gets_its_answer(workers):
    first, second = workers
    call = _claimed(first)
    with pytest.raises(KeyConflict) as caught:
        IdempotentCall(second, KEY, HASH, atomic=False).remembered()
    assert caught.value.code == "request_in_progress" and caught.value.retry_after == 1
    with call.running():
        call.remember(200, ANSWER)
    assert IdempotentCall(second, KEY, HASH, atomic=False).remembered() == (200, ANSWER)
    with pytest.raises(ConflictError) as reused:
        IdempotentCall(second, KEY, "another-request", atomic=False).remembered()
    assert reused.value.code == "idempotency_key_reused"


def test_a_duplicate_past_the_lookup_meets_the_claim_in_its_first_write(workers):
    first, second = workers
    late = IdempotentCall(second, KEY, HASH, atomic=False)
    assert late.remembered() is None  # looked before the first request claimed
    running = _claimed(first)
    with pytest.raises(KeyConflict) as caught, late.running():
        _write(second, "duplicate_write")
    assert caught.value.code == "request_in_progress"
    assert not _setting(second, "duplicate_write")
    with running.running():
        running.remember(200, ANSWER)
    with pytest.raises(Replay) as replay, late.running():
        _write(second, "duplicate_write")
    assert replay.value.answer == (200, ANSWER)
    assert not _setting(second, "duplicate_write")


def test_a_claim_released_after_a_server_error_lets_a_retry_run(workers):
    engine, other = workers
    call = IdempotentCall(engine, KEY, HASH, atomic=False)
    with pytest.raises(RuntimeError), call.running():
        _write(engine, "first_write")
        raise RuntimeError("a bug")
    call.forget()
    assert IdempotentCall(other, KEY, HASH, atomic=False).remembered() is None


def test_the_claim_of_a_process_that_is_gone_is_taken_over(workers):
    first, second = workers
    pid, started = _finished_pid()
    host = idempotency.socket.gethostname()
    lease_until = iso(utc_now() + timedelta(hours=1))  # the lease alone would still hold
    _stale_claim(first, f"{host}/{pid}/{started:.2f}/dead1", lease_until)
    retry = IdempotentCall(second, KEY, HASH, atomic=False)
    assert retry.remembered() is None  # no wait: it is to run
    with retry.running():
        _write(second, "rerun")
        assert _row(first)["owner"] == retry.owner
        retry.remember(200, ANSWER)
    assert IdempotentCall(first, KEY, HASH, atomic=False).remembered() == (200, ANSWER)


def test_a_recycled_pid_is_not_mistaken_for_the_owner(workers):
    engine, _ = workers
    me = psutil.Process()
    host = idempotency.socket.gethostname()
    lease_until = iso(utc_now() + timedelta(hours=1))
    _stale_claim(engine, f"{host}/{me.pid}/{me.create_time() - 3600:.2f}/old", lease_until)
    assert IdempotentCall(engine, KEY, HASH, atomic=False).remembered() is None


def test_another_hosts_claim_waits_for_its_lease(workers):
    first, second = workers
    lease_until = utc_now() + timedelta(seconds=90)
    _stale_claim(first, "elsewhere.example/4242/1.00/abcd", iso(lease_until))
    retry = IdempotentCall(second, KEY, HASH, atomic=False)
    with pytest.raises(KeyConflict) as caught:
        retry.remembered()
    assert caught.value.code == "request_in_progress"
    second.clock = lambda: lease_until + timedelta(seconds=1)
    assert retry.remembered() is None
    with retry.running():
        _write(second, "after_the_lease")
    assert _row(first)["owner"] == retry.owner


def test_each_later_write_of_a_claimed_request_renews_its_lease(workers):
    engine, _ = workers
    call = IdempotentCall(engine, KEY, HASH, atomic=False)
    later = utc_now() + timedelta(minutes=30)
    with call.running():
        _write(engine, "first_write")
        first_lease = _row(engine)["lease_until"]
        engine.clock = lambda: later
        _write(engine, "much_later_write")
    assert _row(engine)["lease_until"] > first_lease
    assert idempotency.parse_iso(_row(engine)["lease_until"]) > later


# -- expiry and secrets -------------------------------------------------------------------------


def test_answers_expire_after_24_hours_and_claims_delete_a_few_old_ones(workers):
    engine, other = workers
    with engine.write() as conn:
        old = iso(utc_now() - timedelta(hours=25))
        conn.executemany(
            "INSERT INTO idempotent_requests (key, request_hash, status, http_status, response, "
            "created_at) VALUES (?, ?, 'done', 200, '{}', ?)",
            [(f"front-desk:old-{i}", HASH, old) for i in range(20)] + [(KEY, HASH, old)],
        )
    replay_after_a_day = IdempotentCall(other, KEY, HASH, atomic=True)
    assert replay_after_a_day.remembered() is None  # a new request now
    with replay_after_a_day.running():
        _write(other, "ran_again")
        replay_after_a_day.remember(200, ANSWER)
    assert _row(engine)["created_at"] > old  # the key's fresh answer
    left = engine.conn.execute(
        "SELECT COUNT(*) FROM idempotent_requests WHERE created_at = ?", (old,)
    ).fetchone()[0]
    assert left == 21 - idempotency.EXPIRED_PER_CLAIM - 1


def test_an_answer_with_a_secret_is_kept_without_it(workers):
    engine, other = workers
    result = {"name": "front-desk", "token": "ck_the_secret_itself"}
    kept = idempotency.without_secrets(result, ("token",))
    call = IdempotentCall(engine, KEY, HASH, atomic=True)
    with call.running():
        _write(engine, "token_created")
        sent = call.remember(
            200, {"success": True, "result": result}, {"success": True, "result": kept}
        )
    assert "ck_the_secret_itself" in sent  # the first answer shows it, once
    dump = "".join(str(tuple(r)) for r in other.conn.execute("SELECT * FROM idempotent_requests"))
    assert "ck_the_secret_itself" not in dump
    status, replay = IdempotentCall(other, KEY, HASH, atomic=True).remembered()
    assert status == 200 and replay["result"]["name"] == "front-desk"
    assert replay["result"]["token"] is None
    assert replay["result"]["warnings"][0]["code"] == "secret_not_replayed"


# -- a worker killed mid-request, then the client's retry ---------------------------------------

KILLED_MID_REQUEST = """
import json, os, signal, sys
from checkout_cli.config import store_target
from checkout_cli.endpoints import get_endpoint
from checkout_cli.server.app import Service, _idempotent

db, service, name, key, body, target = sys.argv[1:]
module_name, path = target.split(":")
owner = __import__(module_name, fromlist=["_"])
*parents, attribute = path.split(".")
for parent in parents:
    owner = getattr(owner, parent)
setattr(owner, attribute, lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))
endpoint = get_endpoint(service, name)
_idempotent(Service(store_target(db)), "front-desk", key, endpoint, json.loads(body))
raise SystemExit("not killed")
"""
BEFORE_THE_ANSWER = "checkout_cli.engine.idempotency:IdempotentCall.remember"
BEFORE_THE_EMAIL = "checkout_cli.engine.outbox:deliver_for_order"


def _killed_then_retried(
    db, service: str, name: str, body: dict, *, killed_at: str
) -> tuple[int, dict, dict]:
    """The request in a server worker SIGKILLed at ``killed_at``, then its retry (same key) in
    another worker: the retry's status, body and headers."""
    import json

    from checkout_cli.endpoints import get_endpoint
    from checkout_cli.server.app import Service, _idempotent

    key = "retry-after-a-kill"
    args = [db, service, name, key, json.dumps(body), killed_at]
    worker = subprocess.run(
        [sys.executable, "-c", KILLED_MID_REQUEST, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == -9, worker.stderr  # died where it was meant to
    response = _idempotent(Service(db), "front-desk", key, get_endpoint(service, name), body)
    return response.status_code, json.loads(response.body), dict(response.headers)


def test_an_add_item_whose_worker_died_before_answering_runs_once_on_retry(backend):
    from tests.engine_helpers import add

    cart = add(backend, "GIFT-CARD-25")["cart_token"]
    body = {"cart_token": cart, "product_sku": "GIFT-CARD-25", "quantity": 2}
    status, answer, headers = _killed_then_retried(
        backend.db_path, "shopping-cart", "add-item", body, killed_at=BEFORE_THE_ANSWER
    )
    assert status == 200 and "idempotent-replayed" not in headers  # nothing was kept: it ran
    assert answer["result"]["items"][0]["quantity"] == 3  # 1 + 2, once
    cart_now = backend.call("shopping-cart", "get-cart", {"cart_token": cart})
    assert cart_now["items"][0]["quantity"] == 3


def test_a_completion_whose_worker_died_is_answered_as_its_own_and_its_email_sent(backend):
    from tests.conftest import ready_checkout
    from tests.engine_helpers import events, invoice, scalar

    token = ready_checkout(backend)
    invoice(backend, token)
    body = {"checkout_token": token}
    status, answer, _ = _killed_then_retried(
        backend.db_path, "checkout-flow", "complete-checkout", body, killed_at=BEFORE_THE_EMAIL
    )
    assert status == 200 and answer["result"]["status"] == "completed"
    assert answer["result"]["already_completed"] is False  # this request did complete it
    assert [kind for kind, *_ in events(backend.db_path, token)].count("checkout_completed") == 1
    assert scalar(backend.db_path, "SELECT COUNT(*) FROM orders") == 1
    assert scalar(backend.db_path, "SELECT status FROM outbox") == "sent"
    assert len(list((backend.outbox_dir).iterdir())) == 1
    assert scalar(backend.db_path, "SELECT status FROM idempotent_requests") == "done"


def test_a_cancel_whose_worker_died_reports_its_own_cancellation_as_done(backend):
    from tests.conftest import ready_checkout
    from tests.engine_helpers import events

    token = ready_checkout(backend)
    body = {"checkout_token": token, "reason": "customer called"}
    status, answer, _ = _killed_then_retried(
        backend.db_path, "checkout-flow", "cancel-checkout", body, killed_at=BEFORE_THE_ANSWER
    )
    assert status == 200, answer  # not 409 checkout_cancelled: it was this request's doing
    assert answer["result"]["status"] == "cancelled"
    assert [kind for kind, *_ in events(backend.db_path, token)].count("checkout_cancelled") == 1


def test_a_new_invoice_payment_whose_worker_died_is_made_once(backend):
    from tests.conftest import ready_checkout
    from tests.engine_helpers import invoice, scalar

    token = ready_checkout(backend)
    invoice(backend, token)
    body = {"checkout_token": token, "provider": "invoice", "new": True}
    status, answer, _ = _killed_then_retried(
        backend.db_path, "checkout-flow", "create-payment", body, killed_at=BEFORE_THE_ANSWER
    )
    assert status == 200 and answer["result"]["status"] == "completable"
    assert scalar(backend.db_path, "SELECT COUNT(*) FROM payments") == 2  # the first, one new


def test_an_expiry_is_committed_with_the_refusal_it_answers(backend):
    """Atomic: the overdue checkout's expiry and the 409 that reports it commit together, and
    the retry replays that answer."""
    from checkout_cli.endpoints import get_endpoint
    from checkout_cli.errors import ConflictError
    from checkout_cli.server.app import Service, _idempotent
    from tests.conftest import CUSTOMER, ready_checkout
    from tests.engine_helpers import scalar

    token = ready_checkout(backend)
    with backend.engine.write() as conn:
        conn.execute("UPDATE checkouts SET expires_at = '2000-01-01T00:00:00.000000Z'")
    endpoint = get_endpoint("checkout-flow", "set-customer")
    body = {"checkout_token": token, **CUSTOMER}
    service = Service(backend.db_path)
    with pytest.raises(ConflictError) as refused:
        _idempotent(service, "front-desk", "K-exp", endpoint, body)
    assert refused.value.code == "checkout_expired"
    assert scalar(backend.db_path, "SELECT status FROM checkouts") == "expired"
    again = _idempotent(service, "front-desk", "K-exp", endpoint, body)
    assert again.status_code == 409 and again.headers["idempotent-replayed"] == "true"


def test_a_live_claim_is_answered_409_with_retry_after(backend):
    from checkout_cli.endpoints import get_endpoint
    from checkout_cli.server.app import Service, _idempotent

    endpoint = get_endpoint("checkout-admin", "send-outbox")
    body = {"limit": 1}
    digest = idempotency.request_hash(endpoint.service, endpoint.name, body)
    service = Service(backend.db_path)
    running = IdempotentCall(backend.engine, "front-desk:K-live", digest, atomic=False)
    with running.running():
        _write(backend.engine, "first_write")
    response = _idempotent(service, "front-desk", "K-live", endpoint, body)
    assert response.status_code == 409 and response.headers["retry-after"] == "1"
    assert b'"request_in_progress"' in response.body


def test_create_token_is_remembered_without_its_token(backend):
    """The rule for every endpoint whose answer holds a secret (``secret_fields``)."""
    import json

    from checkout_cli.endpoints import get_endpoint
    from checkout_cli.server.app import Service, _idempotent

    endpoint = get_endpoint("checkout-admin", "create-token")
    service = Service(backend.db_path)
    first = json.loads(_idempotent(service, "admin", "K-tok", endpoint, {"name": "till"}).body)
    token = first["result"]["token"]
    assert token.startswith("ck_")
    stored = backend.engine.conn.execute("SELECT * FROM idempotent_requests").fetchall()
    assert stored and token not in "".join(str(tuple(row)) for row in stored)
    replay = _idempotent(service, "admin", "K-tok", endpoint, {"name": "till"})
    again = json.loads(replay.body)
    assert replay.headers["idempotent-replayed"] == "true" and again["success"] is True
    assert again["result"]["name"] == "till" and again["result"]["token"] is None
    assert [w["code"] for w in again["result"]["warnings"]] == ["secret_not_replayed"]


def test_a_new_stripe_payment_whose_worker_died_is_made_once(stripe_fake, backend):
    """The worker died after the replacing Stripe session was made and recorded: the retry
    answers with that payment instead of replacing it again."""
    from tests.conftest import ready_checkout

    token = ready_checkout(backend)
    first = backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "stripe"}
    )
    body = {"checkout_token": token, "provider": "stripe", "new": True}
    status, answer, _ = _killed_then_retried(
        backend.db_path, "checkout-flow", "create-payment", body, killed_at=BEFORE_THE_ANSWER
    )
    assert status == 200, answer
    payment = answer["result"]["payment"]
    assert payment["provider_payment_id"] != first["payment"]["provider_payment_id"]
    assert payment["status"] == "open" and stripe_fake.create_count == 2  # not a third
