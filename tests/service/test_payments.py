"""Stripe webhook: the signature is checked (header computed here with Stripe's scheme and a
test secret), each event and each checkout credits once, and forgeries change nothing."""

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from animatica.db.models import LedgerEntry
from animatica.db.session import Database
from animatica.service import payments
from animatica.settings import Settings

SECRET = "whsec_test_secret"


def _signed(payload: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={digest}", "content-type": "application/json"}


def _event(event_id: str, checkout_id: str, amount: int = 499, paid: str = "paid") -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": checkout_id,
                    "object": "checkout.session",
                    "payment_status": paid,
                    "amount_total": amount,
                    "currency": "usd",
                    "metadata": {"plan": "pro"},  # ignored: the plan is the one stored at checkout
                }
            },
        }
    ).encode()


def _open_checkout(client: Any, api: Any, tokens: dict[str, str], plan: str = "basic") -> str:
    response = client.post(
        "/api/v0/payments/checkout-session", params={"price_id": plan}, headers=api.bearer(tokens)
    )
    assert response.status_code == 200
    return str(response.json()["checkout_session"]["id"])


def test_webhook_credits_once_and_ignores_replays_and_forgeries(make_client: Any, api: Any) -> None:
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    checkout = _open_checkout(client, api, tokens)
    url = "/api/v0/payments/webhook"

    forged = _event("evt_forged", checkout)
    assert client.post(url, content=forged, headers=_signed(forged, "whsec_wrong")).status_code == 422
    assert client.post(url, content=forged, headers={"content-type": "application/json"}).status_code == 422
    stale = _signed(forged, timestamp=int(time.time()) - 3600)
    assert client.post(url, content=forged, headers=stale).status_code == 422
    good = _event("evt_1", checkout)
    tampered = good.replace(b'"amount_total": 499', b'"amount_total": 100')
    assert client.post(url, content=tampered, headers=_signed(good)).status_code == 422
    assert api.credits(client, tokens) == 3

    unpaid = _event("evt_0", checkout, paid="unpaid")
    assert client.post(url, content=unpaid, headers=_signed(unpaid)).json() == {"status": "unpaid"}
    assert client.post(url, content=good, headers=_signed(good)).json() == {"status": "credited"}
    assert api.credits(client, tokens) == 13
    # Same event replayed, and a second event for the same checkout: nothing more.
    assert client.post(url, content=good, headers=_signed(good)).json() == {"status": "duplicate"}
    other = _event("evt_2", checkout)
    assert client.post(url, content=other, headers=_signed(other)).json() == {"status": "already-credited"}
    assert api.credits(client, tokens) == 13
    assert client.get("/api/v1/me", headers=api.bearer(tokens)).json()["plan"] == "basic"

    # A paid amount that does not match the plan is not credited.
    second = _open_checkout(client, api, tokens)
    cheap = _event("evt_3", second, amount=1)
    assert client.post(url, content=cheap, headers=_signed(cheap)).json() == {"status": "rejected"}
    unknown = _event("evt_4", "cs_not_ours")
    assert client.post(url, content=unknown, headers=_signed(unknown)).json() == {
        "status": "unknown-checkout"
    }
    assert api.credits(client, tokens) == 13


def test_unknown_plan_and_unpaid_confirmation(make_client: Any, api: Any) -> None:
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    bad = client.post(
        "/api/v0/payments/checkout-session", params={"price_id": "free"}, headers=api.bearer(tokens)
    )
    assert bad.status_code == 422
    checkout = _open_checkout(client, api, tokens)
    unpaid = client.post("/api/v0/payments", json={"session_id": checkout}, headers=api.bearer(tokens))
    assert unpaid.status_code == 400 and api.credits(client, tokens) == 3
    view = client.get(
        "/api/v0/payments/checkout-session", params={"session_id": checkout}, headers=api.bearer(tokens)
    )
    assert view.json()["checkout_session"]["payment_status"] == "unpaid"


# --- which provider, and what the pricing page says --------------------------------------------


@pytest.mark.parametrize(
    ("host", "chosen"),
    [
        ("127.0.0.1", "local"),
        ("127.0.0.2", "local"),
        ("::1", "local"),
        ("[::1]", "local"),
        ("localhost", "local"),
        ("0.0.0.0", "none"),
        ("::", "none"),
        ("192.168.1.20", "none"),
        ("animatica.example.com", "none"),
        (None, "none"),  # an app built without a listen address
    ],
)
def test_auto_is_test_mode_only_on_loopback(settings: Settings, host: str | None, chosen: str) -> None:
    auto = settings.model_copy(
        update={"payment_provider": "auto", "public_base_url": "http://localhost:8000"}
    )
    assert payments.choose_provider(auto, host) == chosen
    # Announced under a public address, as behind a proxy on the same machine: never test mode.
    proxied = auto.model_copy(update={"public_base_url": "https://animatica.example.com"})
    assert payments.choose_provider(proxied, host) == "none"
    with_stripe = auto.model_copy(update={"stripe_secret_key": "sk_test_123"})
    assert payments.choose_provider(with_stripe, host) == "stripe"
    assert payments.choose_provider(auto.model_copy(update={"payment_provider": "local"}), host) == "local"
    assert payments.choose_provider(auto.model_copy(update={"payment_provider": "none"}), host) == "none"


@contextmanager
def _logged(name: str) -> Iterator[list[str]]:
    """Messages a logger emits (the service's loggers do not propagate to pytest's handler)."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(f"{record.levelname} {record.getMessage()}")  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def _app(settings: Settings, bind_host: str | None, **overrides: Any) -> TestClient:
    from animatica.service.app import create_app

    values = {"log_level": "INFO", **overrides}
    return TestClient(
        create_app(settings.model_copy(update=values), bind_host=bind_host), follow_redirects=False
    )


def test_a_public_server_without_stripe_sells_nothing(settings: Settings, api: Any) -> None:
    with _logged("animatica.service") as log, _app(settings, "0.0.0.0", payment_provider="auto") as client:
        assert "INFO payments: none" in log
        tokens = api.signup_login(client, "alice")
        opened = client.post(
            "/api/v0/payments/checkout-session", params={"price_id": "basic"}, headers=api.bearer(tokens)
        )
        assert opened.status_code == 503 and "not configured" in opened.json()["detail"]
        page = client.get("/pricing").text
        assert 'id="payments-off"' in page and "Payments are not configured on this server" in page
        assert re.search(r'<button[^>]*id="checkout"[^>]*disabled', page)
        assert 'id="test-mode"' not in page
        assert client.get("/api/v1/payments/local/cs_local_anything").status_code == 404
        assert api.credits(client, tokens) == 3


def test_loopback_gets_test_mode_and_says_so(settings: Settings, api: Any) -> None:
    local = {"payment_provider": "auto", "public_base_url": "http://127.0.0.1:8000"}
    with _logged("animatica.service") as log, _app(settings, "127.0.0.1", **local) as client:
        assert "INFO payments: local (test mode)" in log
        tokens = api.signup_login(client, "alice")
        checkout = _open_checkout(client, api, tokens)
        assert client.post(f"/api/v1/payments/local/{checkout}/pay").status_code == 200
        assert api.credits(client, tokens) == 13
        page = client.get("/pricing").text
        assert 'id="test-mode"' in page and 'id="payments-off"' not in page


def test_modes_are_logged_and_risky_ones_loudly(settings: Settings) -> None:
    with _logged("animatica.service") as log, _app(settings, "0.0.0.0", payment_provider="local"):
        pass
    assert next(line for line in log if "payments:" in line).startswith(
        "WARNING payments: local (test mode): anyone who signs up can add credits for free"
    )
    with (
        _logged("animatica.service") as log,
        _app(settings, "0.0.0.0", payment_provider="auto", stripe_secret_key="sk_test_1"),
    ):
        pass
    assert "INFO payments: stripe" in log
    no_hook = {"payment_provider": "stripe", "stripe_secret_key": "sk_test_1", "stripe_webhook_secret": ""}
    with _logged("animatica.service") as log, _app(settings, "0.0.0.0", **no_hook):
        pass
    assert any(line.startswith("WARNING payments: stripe: ANIMATICA_STRIPE_WEBHOOK_SECRET") for line in log)


# --- refunds and disputes ------------------------------------------------------------------------


def _paid(event_id: str, checkout_id: str, intent: str, amount: int = 499) -> bytes:
    event = json.loads(_event(event_id, checkout_id, amount))
    event["data"]["object"]["payment_intent"] = intent
    return json.dumps(event).encode()


def _refund(event_id: str, intent: str, refunded: int, amount: int = 499, currency: str = "usd") -> bytes:
    charge = {
        "id": f"ch_{intent}",
        "object": "charge",
        "payment_intent": intent,
        "amount": amount,
        "amount_refunded": refunded,
        "refunded": refunded >= amount,
        "currency": currency,
    }
    return json.dumps({"id": event_id, "type": "charge.refunded", "data": {"object": charge}}).encode()


def _dispute(event_id: str, intent: str, amount: int = 499) -> bytes:
    dispute = {
        "id": f"dp_{event_id}",
        "object": "dispute",
        "charge": f"ch_{intent}",
        "payment_intent": intent,
        "amount": amount,
        "currency": "usd",
        "status": "needs_response",
    }
    return json.dumps(
        {"id": event_id, "type": "charge.dispute.created", "data": {"object": dispute}}
    ).encode()


def _post(client: Any, payload: bytes) -> str:
    response = client.post("/api/v0/payments/webhook", content=payload, headers=_signed(payload))
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def _plan(client: Any, api: Any, tokens: dict[str, str]) -> str:
    return str(client.get("/api/v1/me", headers=api.bearer(tokens)).json()["plan"])


def test_a_refund_takes_the_credits_back_once_and_a_later_dispute_nothing_more(
    make_client: Any, api: Any
) -> None:
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    checkout = _open_checkout(client, api, tokens)
    assert _post(client, _paid("evt_paid", checkout, "pi_alice")) == "credited"
    assert api.credits(client, tokens) == 13 and _plan(client, api, tokens) == "basic"

    refund = _refund("evt_refund", "pi_alice", refunded=499)
    assert _post(client, refund) == "reversed"
    assert api.credits(client, tokens) == 3 and _plan(client, api, tokens) == "free"
    assert _post(client, refund) == "duplicate"  # the same event again
    assert _post(client, _refund("evt_refund_again", "pi_alice", refunded=499)) == "already-reversed"
    assert _post(client, _dispute("evt_dispute", "pi_alice")) == "already-reversed"
    assert api.credits(client, tokens) == 3

    # Money of a charge this server never sold, or in another currency, changes nothing.
    assert _post(client, _refund("evt_other", "pi_not_ours", refunded=499)) == "unknown-charge"
    assert _post(client, _refund("evt_cur", "pi_alice", refunded=499, currency="eur")) == "rejected"
    assert api.credits(client, tokens) == 3


def test_partial_refunds_take_back_in_proportion_and_a_dispute_the_rest(
    make_client: Any, api: Any, db: Database
) -> None:
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    basic, pro = _open_checkout(client, api, tokens), _open_checkout(client, api, tokens, "pro")
    assert _post(client, _paid("evt_basic", basic, "pi_basic")) == "credited"
    assert _post(client, _paid("evt_pro", pro, "pi_pro", amount=1999)) == "credited"
    assert api.credits(client, tokens) == 63 and _plan(client, api, tokens) == "pro"

    # 2.50 of 4.99 back: 10 credits x 250/499 = 5.01, rounded up to 6.
    assert _post(client, _refund("evt_r1", "pi_basic", refunded=250)) == "reversed"
    assert api.credits(client, tokens) == 57
    # Stripe reports the refunded total: 3.00 in all is 6.01 -> 7 credits, one more.
    assert _post(client, _refund("evt_r2", "pi_basic", refunded=300)) == "reversed"
    assert api.credits(client, tokens) == 56 and _plan(client, api, tokens) == "pro"
    # A dispute over the 1.99 still paid takes the rest, never more than was bought.
    assert _post(client, _dispute("evt_d1", "pi_basic", amount=199)) == "reversed"
    assert api.credits(client, tokens) == 53
    assert _post(client, _dispute("evt_d2", "pi_basic", amount=499)) == "already-reversed"
    assert api.credits(client, tokens) == 53
    # The pro pack disputed: its plan goes, the basic pack was wholly given back too.
    assert _post(client, _dispute("evt_d3", "pi_pro", amount=1999)) == "reversed"
    assert api.credits(client, tokens) == 3 and _plan(client, api, tokens) == "free"
    with db.read() as session:
        rows = session.execute(
            select(LedgerEntry.amount, LedgerEntry.ref).where(LedgerEntry.kind == "chargeback")
        ).all()
    assert sorted(amount for amount, _ in rows) == [-50, -6, -3, -1]


def test_refund_and_dispute_racing_take_the_credits_once(make_client: Any, api: Any, db: Database) -> None:
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    checkout = _open_checkout(client, api, tokens)
    assert _post(client, _paid("evt_paid", checkout, "pi_race")) == "credited"
    events = [json.loads(_refund(f"evt_r{i}", "pi_race", 499)) for i in range(4)]
    events += [json.loads(_dispute(f"evt_d{i}", "pi_race")) for i in range(4)]
    barrier = threading.Barrier(len(events))
    outcomes: list[str] = []
    lock = threading.Lock()

    def deliver(event: dict[str, Any]) -> None:
        barrier.wait()
        outcome = payments.handle_stripe_event(db, event)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=deliver, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already-reversed"] * 7 + ["reversed"]
    assert api.credits(client, tokens) == 3


def test_a_negative_balance_blocks_new_jobs_until_credits_are_bought(
    make_client: Any, api: Any, media: dict[str, Path]
) -> None:
    client = make_client(worker=False, free_credits=0)
    tokens = api.signup_login(client, "alice")
    checkout = _open_checkout(client, api, tokens)
    assert _post(client, _paid("evt_paid", checkout, "pi_spent")) == "credited"
    for _ in range(2):
        assert api.submit(client, tokens, media["image"], media["video"]).status_code == 202
    assert _post(client, _dispute("evt_dispute", "pi_spent")) == "reversed"
    assert api.credits(client, tokens) == -2

    refused = api.submit(client, tokens, media["image"], media["video"])
    assert refused.status_code == 402
    assert refused.json()["detail"] == (
        "Your balance is negative (-2 credits) after a refund or dispute; buy credits to continue."
    )
    assert client.get("/api/v1/animations", headers=api.bearer(tokens)).json()["total"] == 2

    again = _open_checkout(client, api, tokens)
    assert client.post(f"/api/v1/payments/local/{again}/pay").status_code == 200
    assert api.credits(client, tokens) == 8
    assert api.submit(client, tokens, media["image"], media["video"]).status_code == 202
