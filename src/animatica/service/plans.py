"""Plans: what a credit pack costs and which limits a buyer gets.

Plans are part of the product definition, not data an operator edits, so they live in code;
Stripe only needs a price id per plan (``ANIMATICA_STRIPE_PRICES``). A user's limits are those
of the best plan they have bought; every account starts on ``free``.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    rank: int
    price_cents: int
    currency: str
    credits: int
    max_duration_seconds: float
    max_side: int
    priority: int
    parallel_jobs: int
    features: tuple[str, ...] = field(default_factory=tuple)
    # Source pictures with more pixels than this (by their header) are refused before decoding,
    # which bounds what checking one upload can cost; smaller ones wider than ``max_side`` are
    # decoded and scaled down to it.
    max_source_pixels: int = 25_000_000
    # Minutes of live animation (webcam mode) per UTC day; a session in progress is ended when
    # they run out, and they are counted again from zero at midnight UTC.
    live_minutes_per_day: float = 3.0
    # Videos at a higher frame rate are refused when uploaded (every frame is one frame of work),
    # so the limit holds once for the whole job, whichever worker renders which part of it.
    max_fps: float = 60.0


PLANS: dict[str, Plan] = {
    plan.id: plan
    for plan in (
        Plan(
            "free",
            "FREE",
            0,
            0,
            "usd",
            0,
            15.0,
            1280,
            0,
            1,
            ("Clips up to 15 s", "Up to 1280 px", "Videos up to 30 fps", "Live mode: 3 min a day"),
            live_minutes_per_day=3.0,
            max_fps=30.0,
        ),
        Plan(
            "basic",
            "BASIC",
            1,
            499,
            "usd",
            10,
            60.0,
            1920,
            1,
            2,
            (
                "10 animations",
                "Clips up to 60 s",
                "Up to 1920 px",
                "2 jobs at a time",
                "Live mode: 30 min a day",
            ),
            max_source_pixels=50_000_000,
            live_minutes_per_day=30.0,
        ),
        Plan(
            "pro",
            "PRO",
            2,
            1999,
            "usd",
            50,
            300.0,
            3840,
            2,
            3,
            (
                "50 animations",
                "Clips up to 5 min",
                "Up to 3840 px",
                "3 jobs at a time",
                "Priority queue",
                "Live mode: 120 min a day",
            ),
            max_source_pixels=100_000_000,
            live_minutes_per_day=120.0,
        ),
    )
}

PURCHASABLE = tuple(plan for plan in PLANS.values() if plan.price_cents > 0)


def get_plan(plan_id: str) -> Plan:
    """The plan with this id; unknown ids (say, a plan removed since) fall back to free."""
    return PLANS.get(plan_id, PLANS["free"])


def better_plan(current: str, bought: str) -> str:
    """Buying a smaller pack never downgrades the limits already bought."""
    return bought if get_plan(bought).rank > get_plan(current).rank else current
