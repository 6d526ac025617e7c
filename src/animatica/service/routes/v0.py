"""The /api/v0 contract (animation, payments, subscriptions) that early clients use, made safe:
credits are checked on the server, payments are credited once and only when the provider says
so, and generation goes through the job queue instead of holding a model in the request.
"""

import logging
import time
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, File, Header, Query, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from animatica.db.models import Payment
from animatica.jobs import state
from animatica.jobs.options import JobOptions
from animatica.service import accounts, animations, payments
from animatica.service.deps import Ctx, Me
from animatica.service.errors import Invalid, TimedOut
from animatica.service.plans import PURCHASABLE, Plan
from animatica.service.ratelimit import sync_slots
from animatica.service.results import serve_file
from animatica.service.schemas import PaymentConfirmation
from animatica.service.submit import submit

router = APIRouter(prefix="/api/v0", tags=["v0"])
log = logging.getLogger("animatica.service")
SYNC_POLL_SECONDS = 0.25


@router.post("/animation/video", response_class=Response)
async def animate_sync(
    ctx: Ctx,
    user: Me,
    request: Request,
    source_image: Annotated[UploadFile, File()],
    driving_video: Annotated[UploadFile, File()],
) -> Response:
    """Animate a short clip and answer with the video; longer clips belong to /api/v1/animations.

    The request stays open until its job ends, so it waits on the event loop, not in a server
    thread: each look at the job is a short read-only query in the thread pool, and between looks
    nothing is held, so any number of waiting requests leaves every other route its threads.
    Open requests are capped per user and overall (429 beyond), and the job queues like any
    other job of the user's plan. A client that hangs up stops the wait; its job still runs and
    stays in the user's history.
    """
    with sync_slots(ctx).hold(user.id):
        job_id = await run_in_threadpool(
            submit,
            ctx,
            user,
            source_image,
            driving_video,
            JobOptions(),  # the operator's default engine
            max_seconds=ctx.settings.sync_max_seconds,
        )
        deadline = time.monotonic() + ctx.settings.sync_timeout_seconds
        while True:
            job = await run_in_threadpool(animations.load_job, ctx, user.id, job_id)
            if job.status in state.FINAL:
                break
            if time.monotonic() > deadline:
                await run_in_threadpool(animations.stop, ctx, user.id, job_id)
                raise TimedOut(
                    "The animation took too long and was canceled (credit returned); use /api/v1/animations."
                )
            if await request.is_disconnected():
                log.info("sync client left; the job goes on", extra={"job_id": job_id})
                return Response(status_code=499)
            await anyio.sleep(SYNC_POLL_SECONDS)
    if job.status != state.SUCCEEDED or job.result_key is None:
        raise Invalid(job.error or "The animation failed; your credit was returned.")
    result_key = job.result_key
    return await run_in_threadpool(
        serve_file, request, ctx.storage, result_key, "generated_animation.mp4", "video/mp4"
    )


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
    return {"remaining_queries": accounts.balance(ctx.db, user.id), "session_id": body.session_id}


@router.post("/payments/webhook")
async def stripe_webhook(
    ctx: Ctx,
    request: Request,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> dict[str, str]:
    payload = await request.body()
    event = payments.verify_stripe_event(payload, stripe_signature, ctx.settings.stripe_webhook_secret)
    outcome = await run_in_threadpool(payments.handle_stripe_event, ctx.db, event)
    return {"status": outcome}


@router.get("/subscriptions/current")
def current_subscription(ctx: Ctx, user: Me) -> dict[str, Any]:
    remaining = accounts.balance(ctx.db, user.id)
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
