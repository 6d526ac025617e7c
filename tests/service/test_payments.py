"""Stripe webhook: the signature is checked (header computed here with Stripe's scheme and a
test secret), each event and each checkout credits once, and forgeries change nothing."""

import hashlib
import hmac
import json
import time
from typing import Any

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


def _open_checkout(client: Any, api: Any, tokens: dict[str, str]) -> str:
    response = client.post(
        "/api/v0/payments/checkout-session", params={"price_id": "basic"}, headers=api.bearer(tokens)
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
