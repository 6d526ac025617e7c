"""Pricing (plan cards and checkout) and About.

A checkout is opened only when someone clicks "Continue to checkout", never on a page load: each
one is a record at the payment provider, and a visitor who only looks should leave none. Its id
is remembered in an HttpOnly cookie, so whichever way the buyer comes back (Stripe's success or
cancel address, the browser's Back button from the test-mode page, a
bookmark), this page can say whether the credits arrived. Crediting itself never depends on
this page: the webhook or the test-mode page does it, once.
"""

import re
from contextlib import suppress
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from animatica.db.models import Payment
from animatica.errors import AnimaticaError
from animatica.service import payments
from animatica.service.deps import Ctx, CurrentUser
from animatica.service.errors import NotFound, ServiceError
from animatica.service.pages.sessions import CsrfChecked, MaybeViewer, Viewer, page_sessions
from animatica.service.pages.views import redirect, render
from animatica.service.plans import PLANS, PURCHASABLE

router = APIRouter(include_in_schema=False)
CHECKOUT_COOKIE = "animatica_checkout"


def checkout_target(payment: Payment) -> str:
    """Where the buyer pays. The test-mode page lives on this server, so keep the browser on the
    address it is using now rather than the configured public one."""
    url = payment.url or "/pricing"
    if payment.provider == "local":
        return urlsplit(url).path
    return url


def _notice(
    ctx: Ctx, user: CurrentUser | None, checkout_id: str | None, success: bool, canceled: bool
) -> tuple[dict[str, str] | None, Payment | None, bool]:
    """(message, unfinished checkout to offer again, whether to forget the remembered checkout)."""
    if canceled:
        return {"kind": "info", "text": "Payment canceled. Nothing was charged."}, None, True
    if user is None or not checkout_id:
        return None, None, False
    try:
        payment = payments.find_checkout(ctx.db, checkout_id, user.id)
    except NotFound:
        return None, None, True
    if payment.status != "paid" and success and ctx.payments.name != "local":
        # Not paid yet is fine: the webhook credits it later, and the message below says so.
        with suppress(ServiceError):
            payment = payments.confirm_from_client(ctx.db, ctx.payments, checkout_id, user.id)
    if payment.status == "paid":
        text = f"Payment was successful! {payment.credits} credits were added. Thank you for your purchase!"
        return {"kind": "success", "text": text}, None, True
    if success:
        text = "Thank you! The payment is being confirmed; your credits appear as soon as it is."
        return {"kind": "info", "text": text}, None, False
    return None, payment, False


@router.get("/pricing")
def pricing(
    request: Request,
    ctx: Ctx,
    user: MaybeViewer,
    success: bool = False,
    canceled: bool = False,
    session_id: str | None = None,
    plan: str | None = None,
) -> Response:
    checkout_id = session_id or request.cookies.get(CHECKOUT_COOKIE)
    notice, pending, forget = _notice(ctx, user, checkout_id, success, canceled)
    selected = plan if plan in {p.id for p in PURCHASABLE} else None
    if selected is None and pending is not None:
        selected = pending.plan_id
    response = render(
        request,
        ctx,
        "pricing.html",
        user,
        plans=PURCHASABLE,
        free=PLANS["free"],
        selected=selected or PURCHASABLE[0].id,
        notice=notice,
        pending=pending,
        pending_url=checkout_target(pending) if pending else None,
        error=None,
        test_mode=ctx.payments.name == "local",
        payments_off=ctx.payments.name == "none",
    )
    if forget and CHECKOUT_COOKIE in request.cookies:
        response.delete_cookie(CHECKOUT_COOKIE, path="/")
    return response


@router.post("/pricing/checkout", dependencies=[CsrfChecked])
def checkout(request: Request, ctx: Ctx, user: Viewer, plan: Annotated[str, Form()] = "") -> Response:
    try:
        chosen = payments.purchasable_plan(plan)
        payment = payments.open_checkout(ctx.db, ctx.payments, user.id, chosen)
    except AnimaticaError as error:
        message = "Choose a plan first." if not plan else str(error)
        return render(
            request,
            ctx,
            "pricing.html",
            user,
            status_code=400,
            plans=PURCHASABLE,
            free=PLANS["free"],
            selected=PURCHASABLE[0].id,
            notice=None,
            pending=None,
            pending_url=None,
            error=message,
            test_mode=ctx.payments.name == "local",
            payments_off=ctx.payments.name == "none",
        )
    response = redirect(checkout_target(payment))
    page_sessions(ctx).set_cookie(response, request, CHECKOUT_COOKIE, payment.checkout_id)
    return response


EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")


def contact_link(contact: str) -> dict[str, str | None] | None:
    """The operator's contact as text and a safe link: mailto for an address, http(s) URLs as
    they are; anything else (a ``javascript:`` URL, say) is shown as plain text, never linked."""
    text = contact.strip()
    if not text:
        return None
    if EMAIL.match(text):
        return {"text": text, "href": f"mailto:{text}"}
    if urlsplit(text).scheme in ("http", "https") and urlsplit(text).netloc:
        return {"text": text, "href": text}
    return {"text": text, "href": None}


@router.get("/about")
def about(request: Request, ctx: Ctx, user: MaybeViewer) -> Response:
    contact = contact_link(ctx.settings.contact)
    return render(request, ctx, "about.html", user, free=PLANS["free"], contact=contact)
