"""Buying credit packs: checkout sessions, and crediting each paid one exactly once.

The plan, and so the number of credits, is fixed on the server when the checkout is opened
and stored with the paying user's id; nothing the client sends later can change it. Crediting
happens in `complete_payment`, whichever way payment news arrives (Stripe webhook, the seed's
confirmation call, the local test-mode page): a conditional update from ``pending`` to ``paid``
plus a ledger row unique per checkout make every repeat a no-op.
"""

import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select, update

from animatica.db import ledger
from animatica.db.models import Payment, User, WebhookEvent
from animatica.db.session import Database
from animatica.db.types import utcnow
from animatica.service.errors import Invalid, NotFound, ServiceError, Unavailable
from animatica.service.plans import PURCHASABLE, Plan, better_plan, get_plan
from animatica.settings import Settings

log = logging.getLogger("animatica.payments")


@dataclass(frozen=True)
class ProviderCheckout:
    id: str
    url: str


@dataclass(frozen=True)
class ProviderStatus:
    paid: bool
    amount_total: int | None
    currency: str | None


class PaymentProvider(Protocol):
    name: str

    def create_checkout(self, plan: Plan, user_id: int, reference: str) -> ProviderCheckout: ...

    def status(self, checkout_id: str) -> ProviderStatus:
        """The provider's own word on whether a checkout is paid."""
        ...


class LocalProvider:
    """Test-mode payments for a fresh install: a page on this server stands in for Stripe."""

    name = "local"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def create_checkout(self, plan: Plan, user_id: int, reference: str) -> ProviderCheckout:
        checkout_id = f"cs_local_{secrets.token_urlsafe(24)}"
        return ProviderCheckout(checkout_id, f"{self.base_url}/api/v1/payments/local/{checkout_id}")

    def status(self, checkout_id: str) -> ProviderStatus:
        # Local checkouts are paid only through the test-mode page, which credits directly.
        return ProviderStatus(paid=False, amount_total=None, currency=None)


class StripeProvider:
    """Stripe Checkout in payment mode: one-off credit packs, one line item."""

    name = "stripe"

    def __init__(self, settings: Settings) -> None:
        self.api_key = settings.stripe_secret_key
        self.prices = settings.stripe_prices
        self.base_url = settings.public_base_url.rstrip("/")

    def create_checkout(self, plan: Plan, user_id: int, reference: str) -> ProviderCheckout:
        import stripe

        price = self.prices.get(plan.id)
        if not price:
            raise Unavailable(
                f"The {plan.name} plan has no Stripe price configured (ANIMATICA_STRIPE_PRICES)."
            )
        try:
            session = stripe.checkout.Session.create(
                api_key=self.api_key,
                mode="payment",
                line_items=[{"price": price, "quantity": 1}],
                client_reference_id=str(user_id),
                metadata={"plan": plan.id, "user_id": str(user_id), "reference": reference},
                success_url=f"{self.base_url}/pricing?success=true&session_id={{CHECKOUT_SESSION_ID}}",
                cancel_url=f"{self.base_url}/pricing?canceled=true",
            )
        except stripe.StripeError as exc:
            raise Unavailable(f"Stripe refused to open a checkout: {exc.user_message or exc}.") from exc
        return ProviderCheckout(session["id"], session["url"])

    def status(self, checkout_id: str) -> ProviderStatus:
        import stripe

        try:
            session = stripe.checkout.Session.retrieve(checkout_id, api_key=self.api_key)
        except stripe.StripeError as exc:
            raise Unavailable(
                f"Stripe could not be asked about this payment: {exc.user_message or exc}."
            ) from exc
        return ProviderStatus(
            session["payment_status"] == "paid", session.get("amount_total"), session.get("currency")
        )


class PaymentsDisabled:
    name = "none"

    def create_checkout(self, plan: Plan, user_id: int, reference: str) -> ProviderCheckout:
        raise Unavailable("Payments are turned off on this server.")

    def status(self, checkout_id: str) -> ProviderStatus:
        raise Unavailable("Payments are turned off on this server.")


def make_provider(settings: Settings) -> PaymentProvider:
    choice = settings.payment_provider
    if choice == "auto":
        choice = "stripe" if settings.stripe_secret_key else "local"
    if choice == "stripe":
        return StripeProvider(settings)
    if choice == "local":
        return LocalProvider(settings.public_base_url)
    return PaymentsDisabled()


def purchasable_plan(plan_id: str) -> Plan:
    for plan in PURCHASABLE:
        if plan_id in (plan.id, f"price_{plan.id}"):
            return plan
    raise Invalid(f"There is no plan {plan_id!r} for sale; pick one from GET /api/v0/subscriptions/limited.")


def open_checkout(db: Database, provider: PaymentProvider, user_id: int, plan: Plan) -> Payment:
    checkout = provider.create_checkout(plan, user_id, secrets.token_hex(8))
    payment = Payment(
        provider=provider.name,
        checkout_id=checkout.id,
        user_id=user_id,
        plan_id=plan.id,
        credits=plan.credits,
        amount_cents=plan.price_cents,
        currency=plan.currency,
        status="pending",
        url=checkout.url,
        created_at=utcnow(),
    )
    with db.transaction() as session:
        session.add(payment)
    return payment


def find_checkout(db: Database, checkout_id: str, user_id: int | None) -> Payment:
    """A checkout by id; another user's checkout is reported as missing, never as forbidden."""
    with db.read() as session:
        payment = session.scalar(select(Payment).where(Payment.checkout_id == checkout_id))
    if payment is None or (user_id is not None and payment.user_id != user_id):
        raise NotFound("There is no such checkout session.")
    return payment


def complete_payment(
    db: Database, checkout_id: str, amount_total: int | None = None, currency: str | None = None
) -> bool:
    """Credit a paid checkout once; returns False when it had already been credited."""
    with db.transaction() as session:
        payment = session.scalar(select(Payment).where(Payment.checkout_id == checkout_id))
        if payment is None:
            raise NotFound("There is no such checkout session.")
        if amount_total is not None and amount_total != payment.amount_cents:
            raise ServiceError(
                f"Checkout {checkout_id} was paid {amount_total}, not {payment.amount_cents}; not credited."
            )
        if currency is not None and currency.lower() != payment.currency:
            raise ServiceError(f"Checkout {checkout_id} was paid in {currency}; not credited.")
        flipped = session.execute(
            update(Payment)
            .where(Payment.id == payment.id, Payment.status == "pending")
            .values(status="paid", paid_at=utcnow())
        ).rowcount
        if flipped != 1:
            return False
        ledger.grant(session, payment.user_id, payment.credits, "purchase", f"checkout:{checkout_id}")
        user = session.get(User, payment.user_id)
        if user is not None:
            user.plan_id = better_plan(user.plan_id, payment.plan_id)
        log.info("payment credited", extra={"checkout_id": checkout_id, "credits": payment.credits})
        return True


def confirm_from_client(db: Database, provider: PaymentProvider, checkout_id: str, user_id: int) -> Payment:
    """The seed's ``POST /payments``: ask the provider, never the client, whether it is paid."""
    payment = find_checkout(db, checkout_id, user_id)
    if payment.status != "paid":
        status = provider.status(checkout_id)
        if not status.paid:
            raise ServiceError("This checkout is not paid yet; finish the payment first.")
        complete_payment(db, checkout_id, status.amount_total, status.currency)
    return find_checkout(db, checkout_id, user_id)


PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


def handle_stripe_event(db: Database, event: dict[str, Any]) -> str:
    """Apply one verified Stripe event; returns what happened, for the log and the tests."""
    event_id = str(event.get("id", ""))
    event_type = str(event.get("type", ""))
    if not event_id:
        raise Invalid("The webhook event has no id.")
    with db.transaction() as session:
        if session.get(WebhookEvent, event_id) is not None:
            return "duplicate"
    outcome = "ignored"
    if event_type in PAID_EVENTS:
        obj = event.get("data", {}).get("object", {})
        if obj.get("payment_status") == "paid":
            try:
                credited = complete_payment(
                    db, str(obj.get("id")), obj.get("amount_total"), obj.get("currency")
                )
                outcome = "credited" if credited else "already-credited"
            except NotFound:
                outcome = "unknown-checkout"
                log.warning("paid checkout not opened here", extra={"checkout_id": obj.get("id")})
            except ServiceError as error:
                outcome = "rejected"
                log.error("paid checkout not credited: %s", error)
        else:
            outcome = "unpaid"
    with db.transaction() as session:
        if session.get(WebhookEvent, event_id) is None:
            session.add(
                WebhookEvent(id=event_id, provider="stripe", type=event_type[:64], received_at=utcnow())
            )
    return outcome


def verify_stripe_event(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """Check the Stripe-Signature header (HMAC-SHA256 with a 5-minute tolerance) and parse."""
    import stripe

    if not secret:
        raise Unavailable("The Stripe webhook secret is not configured (ANIMATICA_STRIPE_WEBHOOK_SECRET).")
    if not signature:
        raise Invalid("The Stripe-Signature header is missing.")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise Invalid("The webhook signature does not match; the event was ignored.") from exc
    except ValueError as exc:
        raise Invalid("The webhook body is not a Stripe event.") from exc
    return event.to_dict() if hasattr(event, "to_dict") else dict(event)


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def plan_of(payment: Payment) -> Plan:
    return get_plan(payment.plan_id)
