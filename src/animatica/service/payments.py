"""Buying credit packs: checkout sessions, and crediting each paid one exactly once.

The plan, and so the number of credits, is fixed on the server when the checkout is opened
and stored with the paying user's id; nothing the client sends later can change it. Crediting
happens in `complete_payment`, whichever way payment news arrives (Stripe webhook, the client's
confirmation call, the local test-mode page): a conditional update from ``pending`` to ``paid``
plus a ledger row unique per checkout make every repeat a no-op.

Money that goes back to the buyer (a Stripe refund or dispute) takes the credits back through
the ledger, in proportion to the amount returned; the balance may then go below zero, which
blocks new jobs until credits are bought again.

The simulated ``local`` provider hands out credits for nothing, so it is never chosen by
accident: only when named explicitly, or when the server listens on a loopback address only and
is not announced under a public address (as it would be behind a proxy on the same machine).
"""

import hmac
import ipaddress
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

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
    payment_intent: str | None = None


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
            session["payment_status"] == "paid",
            session.get("amount_total"),
            session.get("currency"),
            _object_id(session.get("payment_intent")),
        )


NOT_CONFIGURED = "Payments are not configured on this server, so credits cannot be bought here."


class PaymentsDisabled:
    name = "none"

    def create_checkout(self, plan: Plan, user_id: int, reference: str) -> ProviderCheckout:
        raise Unavailable(NOT_CONFIGURED)

    def status(self, checkout_id: str) -> ProviderStatus:
        raise Unavailable(NOT_CONFIGURED)


MODE_LABELS = {"stripe": "stripe", "local": "local (test mode)", "none": "none"}


def is_loopback(host: str | None) -> bool:
    """Whether a listen address can only be reached from this machine (``0.0.0.0`` cannot)."""
    if not host:
        return False
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def local_only(settings: Settings, bind_host: str | None) -> bool:
    """Whether only this machine can reach the server: it listens on a loopback address and
    its public base URL names one too. An unknown listen address (an app built without
    ``serve``) counts as reachable from elsewhere."""
    return is_loopback(bind_host) and is_loopback(urlsplit(settings.public_base_url).hostname)


def choose_provider(settings: Settings, bind_host: str | None) -> str:
    """The provider 'auto' stands for: the free simulated checkout must be asked for, never
    fallen into, wherever other people could reach it."""
    if settings.payment_provider != "auto":
        return settings.payment_provider
    if settings.stripe_secret_key:
        return "stripe"
    return "local" if local_only(settings, bind_host) else "none"


def make_provider(settings: Settings, bind_host: str | None = None) -> PaymentProvider:
    choice = choose_provider(settings, bind_host)
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
    db: Database,
    checkout_id: str,
    amount_total: int | None = None,
    currency: str | None = None,
    payment_intent: str | None = None,
) -> bool:
    """Credit a paid checkout once; returns False when it had already been credited.

    The payment intent is kept because refunds and disputes name the charge's payment intent,
    never the checkout session.
    """
    with db.transaction() as session:
        payment = session.scalar(select(Payment).where(Payment.checkout_id == checkout_id))
        if payment is None:
            raise NotFound("There is no such checkout session.")
        if payment_intent and payment.payment_intent is None:
            payment.payment_intent = payment_intent
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
    """``POST /payments``, the client saying it paid: ask the provider, never the client, whether it is."""
    payment = find_checkout(db, checkout_id, user_id)
    if payment.status != "paid":
        status = provider.status(checkout_id)
        if not status.paid:
            raise ServiceError("This checkout is not paid yet; finish the payment first.")
        complete_payment(db, checkout_id, status.amount_total, status.currency, status.payment_intent)
    return find_checkout(db, checkout_id, user_id)


def reverse_payment(
    db: Database,
    payment_intent: str,
    refunded_cents: int = 0,
    disputed_cents: int = 0,
    currency: str | None = None,
) -> str:
    """Take back the credits of money returned to the buyer; returns what happened.

    Stripe reports refunds as the charge's cumulative refunded amount and a dispute as its
    amount, so the payment keeps the largest figure seen of each: a replayed or reordered event
    changes nothing, and a refund followed by a dispute of the same charge never counts the
    same money twice. The credits to take back are the purchased ones in proportion to the
    money returned (rounded up, capped at all of them); the ledger records only the part not
    taken back before.
    """
    with db.transaction() as session:
        payment = session.scalar(
            select(Payment).where(Payment.payment_intent == payment_intent).with_for_update()
        )
        if payment is None:
            return "unknown-charge"
        if currency is not None and currency.lower() != payment.currency:
            raise ServiceError(f"Charge {payment_intent} is in {currency}, not {payment.currency}.")
        if payment.status != "paid":
            return "not-credited"
        payment.refunded_cents = max(payment.refunded_cents, refunded_cents)
        payment.disputed_cents = max(payment.disputed_cents, disputed_cents)
        price = max(payment.amount_cents, 1)
        returned = min(price, payment.refunded_cents + payment.disputed_cents)
        owed = -(-payment.credits * returned // price)
        taken = ledger.take_back(session, payment.user_id, owed, f"checkout:{payment.checkout_id}")
        if returned >= price:
            _recompute_plan(session, payment.user_id)
        if not taken:
            return "already-reversed"
        log.info(
            "payment reversed",
            extra={"checkout_id": payment.checkout_id, "credits": taken, "returned_cents": returned},
        )
        return "reversed"


def _recompute_plan(session: Session, user_id: int) -> None:
    """The best plan among the user's purchases that were not wholly given back."""
    user = session.get(User, user_id)
    if user is None:
        return
    kept = session.scalars(
        select(Payment.plan_id).where(
            Payment.user_id == user_id,
            Payment.status == "paid",
            Payment.refunded_cents + Payment.disputed_cents < Payment.amount_cents,
        )
    ).all()
    plan = "free"
    for plan_id in kept:
        plan = better_plan(plan, plan_id)
    user.plan_id = plan


def _object_id(value: Any) -> str | None:
    """A Stripe reference that may be an id or, when expanded, the object itself."""
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else None


def _amount(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
REVERSAL_EVENTS = ("charge.refunded", "charge.dispute.created")


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
                    db,
                    str(obj.get("id")),
                    obj.get("amount_total"),
                    obj.get("currency"),
                    _object_id(obj.get("payment_intent")),
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
    elif event_type in REVERSAL_EVENTS:
        outcome = _reverse_from_event(db, event_type, event.get("data", {}).get("object", {}))
    with db.transaction() as session:
        if session.get(WebhookEvent, event_id) is None:
            session.add(
                WebhookEvent(id=event_id, provider="stripe", type=event_type[:64], received_at=utcnow())
            )
    return outcome


def _reverse_from_event(db: Database, event_type: str, obj: dict[str, Any]) -> str:
    """A refunded charge or a dispute opened on one, matched to its checkout by payment intent."""
    intent = _object_id(obj.get("payment_intent"))
    if intent is None:
        log.warning("%s without a payment intent; nothing taken back", event_type)
        return "unknown-charge"
    if event_type == "charge.refunded":
        refunded = _amount(obj.get("amount_refunded"))
        if not refunded and obj.get("refunded"):
            refunded = _amount(obj.get("amount"))
        amounts = {"refunded_cents": refunded}
    else:
        amounts = {"disputed_cents": _amount(obj.get("amount"))}
    try:
        outcome = reverse_payment(db, intent, currency=obj.get("currency"), **amounts)
    except ServiceError as error:
        log.error("refund or dispute not applied: %s", error)
        return "rejected"
    if outcome == "unknown-charge":
        log.warning("refund or dispute of a charge not paid here", extra={"payment_intent": intent})
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
