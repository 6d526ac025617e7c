"""The `local` payment provider's checkout page: clearly test mode, no money involved.

It lets a fresh install be tried end to end. The unguessable checkout id is the capability,
as with a hosted Stripe page; the page exists only while the local provider is active.
"""

from html import escape
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from animatica.db.models import Payment
from animatica.service import payments
from animatica.service.deps import Ctx
from animatica.service.errors import NotFound
from animatica.service.plans import get_plan

router = APIRouter(prefix="/api/v1/payments/local", tags=["payments"], include_in_schema=False)

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>TEST MODE checkout</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<p style="background:#b00;color:#fff;padding:.5em;font-weight:bold">TEST MODE: no real payment is made.</p>
<h1>Animatica {plan}</h1><p>{credits} credits for {price} {currency}.</p>{body}</body></html>"""


def _payment(ctx: Ctx, checkout_id: str) -> Payment:
    if ctx.payments.name != "local":
        raise NotFound("Test-mode checkout is not enabled on this server.")
    payment = payments.find_checkout(ctx.db, checkout_id, None)
    if payment.provider != "local":
        raise NotFound("There is no such checkout session.")
    return payment


def _render(payment: Payment, body: str) -> HTMLResponse:
    plan = get_plan(payment.plan_id)
    return HTMLResponse(
        _PAGE.format(
            plan=escape(plan.name),
            credits=payment.credits,
            price=f"{payment.amount_cents / 100:.2f}",
            currency=escape(payment.currency.upper()),
            body=body,
        ),
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
        },
    )


def _links(checkout_id: str, paid: bool) -> str:
    """Where the buyer goes next: back with the checkout id (as from Stripe), or away unpaid."""
    if paid:
        back = f"/pricing?{urlencode({'success': 'true', 'session_id': checkout_id})}"
        return f'<p><a id="back" href="{escape(back)}">Back to Animatica</a></p>'
    return '<p><a id="cancel" href="/pricing?canceled=true">Cancel</a> (nothing is charged)</p>'


@router.get("/{checkout_id}", response_class=HTMLResponse)
def checkout_page(ctx: Ctx, checkout_id: str) -> HTMLResponse:
    payment = _payment(ctx, checkout_id)
    if payment.status == "paid":
        return _render(payment, "<p>This checkout is already paid.</p>" + _links(checkout_id, True))
    action = f"/api/v1/payments/local/{escape(checkout_id)}/pay"
    form = f'<form method="post" action="{action}"><button>Pay (test mode)</button></form>'
    return _render(payment, form + _links(checkout_id, False))


@router.post("/{checkout_id}/pay", response_class=HTMLResponse)
def pay(ctx: Ctx, checkout_id: str) -> HTMLResponse:
    payment = _payment(ctx, checkout_id)
    credited = payments.complete_payment(ctx.db, checkout_id)
    message = "Paid: the credits were added." if credited else "This checkout was already paid."
    return _render(payment, f"<p>{message}</p>" + _links(checkout_id, True))
