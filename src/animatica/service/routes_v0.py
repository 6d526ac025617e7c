"""The seed's /api/v0 contract (animation, payments, subscriptions), with its defects fixed:
credits are checked on the server, payments are credited once and only when the provider says
so, and generation goes through the job queue instead of holding a model in the request.
"""

import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Header, Query, Request, UploadFile
from fastapi.responses import Response

from animatica.db import ledger
from animatica.db.models import Job, Payment
from animatica.jobs import store
from animatica.service import payments
from animatica.service.deps import Ctx, Me
from animatica.service.errors import Invalid, TimedOut
from animatica.service.plans import PURCHASABLE, Plan
from animatica.service.results import serve_file
from animatica.service.schemas import PaymentConfirmation
from animatica.service.submit import JobOptions, submit

router = APIRouter(prefix="/api/v0", tags=["seed-compatible"])
SYNC_PRIORITY = 100
SYNC_POLL_SECONDS = 0.2


@router.post("/animation/video", response_class=Response)
def animate_sync(
    ctx: Ctx,
    user: Me,
    request: Request,
    source_image: Annotated[UploadFile, File()],
    driving_video: Annotated[UploadFile, File()],
) -> Response:
    """Animate a short clip and answer with the video; longer clips belong to /api/v1/animations."""
    job_id = submit(
        ctx,
        user,
        source_image,
        driving_video,
        JobOptions(ctx.settings.engine),
        priority_boost=SYNC_PRIORITY,
        max_seconds=ctx.settings.sync_max_seconds,
    )
    deadline = time.monotonic() + ctx.settings.sync_timeout_seconds
    while True:
        with ctx.db.transaction() as session:
            job = session.get(Job, job_id)
            assert job is not None
            if job.status in store.FINAL:
                break
            if time.monotonic() > deadline:
                store.request_cancel(session, job)
                ctx.runner.cancel_local(job_id)
                raise TimedOut(
                    "The animation took too long and was canceled (credit returned); use /api/v1/animations."
                )
        time.sleep(SYNC_POLL_SECONDS)
    if job.status != store.SUCCEEDED or job.result_key is None:
        raise Invalid(job.error or "The animation failed; your credit was returned.")
    return serve_file(request, ctx.storage, job.result_key, "generated_animation.mp4", "video/mp4")


def _checkout_view(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.checkout_id,
        "object": "checkout.session",
        "url": payment.url,
        "status": "complete" if payment.status == "paid" else "open",
        "payment_status": "paid" if payment.status == "paid" else "unpaid",
        "amount_total": payment.amount_cents,
        "currency": payment.currency,
        "metadata": {"plan": payment.plan_id, "queries": str(payment.credits)},
        "provider": payment.provider,
    }


@router.post("/payments/checkout-session")
def create_checkout_session(
    ctx: Ctx, user: Me, price_id: Annotated[str, Query(max_length=255)]
) -> dict[str, Any]:
    plan = payments.purchasable_plan(price_id)
    payment = payments.open_checkout(ctx.db, ctx.payments, user.id, plan)
    return {"checkout_session": _checkout_view(payment)}


@router.get("/payments/checkout-session")
def get_checkout_session(
    ctx: Ctx, user: Me, session_id: Annotated[str, Query(max_length=255)]
) -> dict[str, Any]:
    return {"checkout_session": _checkout_view(payments.find_checkout(ctx.db, session_id, user.id))}


@router.post("/payments")
def confirm_payment(ctx: Ctx, user: Me, body: PaymentConfirmation) -> dict[str, Any]:
    payments.confirm_from_client(ctx.db, ctx.payments, body.session_id, user.id)
    with ctx.db.transaction() as session:
        remaining = ledger.balance(session, user.id)
    return {"remaining_queries": remaining, "session_id": body.session_id}


@router.post("/payments/webhook")
async def stripe_webhook(
    ctx: Ctx,
    request: Request,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> dict[str, str]:
    payload = await request.body()
    event = payments.verify_stripe_event(payload, stripe_signature, ctx.settings.stripe_webhook_secret)
    from starlette.concurrency import run_in_threadpool

    outcome = await run_in_threadpool(payments.handle_stripe_event, ctx.db, event)
    return {"status": outcome}


@router.get("/subscriptions/current")
def current_subscription(ctx: Ctx, user: Me) -> dict[str, Any]:
    with ctx.db.read() as session:
        remaining = ledger.balance(session, user.id)
    return {
        "subscription": {
            "subscription_id": user.id,
            "user_id": user.id,
            "remaining_queries": remaining,
            "plan": user.plan_id,
        }
    }


def _product(plan: Plan, ctx: Ctx) -> dict[str, Any]:
    price_id = ctx.settings.stripe_prices.get(plan.id, f"price_{plan.id}")
    return {
        "id": plan.id,
        "object": "product",
        "active": True,
        "name": f"Animatica {plan.name}",
        "metadata": {"queries": str(plan.credits)},
        "default_price": {
            "id": price_id,
            "object": "price",
            "unit_amount": plan.price_cents,
            "currency": plan.currency,
            "metadata": {},
        },
        "marketing_features": [{"name": feature} for feature in plan.features],
        "limits": {
            "max_duration_seconds": plan.max_duration_seconds,
            "max_side": plan.max_side,
            "priority": plan.priority,
            "parallel_jobs": plan.parallel_jobs,
        },
    }


@router.get("/subscriptions/limited")
def list_plans(ctx: Ctx, user: Me) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [_product(plan, ctx) for plan in PURCHASABLE],
        "has_more": False,
        "public_key": ctx.settings.stripe_publishable_key or None,
        "provider": ctx.payments.name,
    }
