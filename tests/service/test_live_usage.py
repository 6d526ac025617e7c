"""Live usage per user and UTC day, on SQLite and PostgreSQL: metering adds up, days are apart,
plans allow their minutes, and the Pricing page's feature lines say the same minutes."""

from datetime import date

from sqlalchemy import select

from animatica.db import Database
from animatica.db.models import LiveUsage, User
from animatica.service import live
from animatica.service.plans import PLANS, get_plan


def _user(db: Database, name: str) -> int:
    with db.transaction() as session:
        user = User(username=name, password_hash="x", plan_id="free")
        session.add(user)
        session.flush()
        return user.id


def test_metering_adds_up_per_user_and_day(db: Database) -> None:
    alice, bob = _user(db, "alice"), _user(db, "bob")
    today, tomorrow = date(2027, 1, 1), date(2027, 1, 2)
    for seconds in (10.0, 10.0, 2.5):
        live.meter(db, alice, today, seconds)
    live.meter(db, alice, tomorrow, 4.0)
    live.meter(db, bob, today, 1.0)
    live.meter(db, bob, today, 0.0)  # nothing to add: no row change
    with db.read() as session:
        assert live.used_seconds(session, alice, today) == 22.5
        assert live.used_seconds(session, alice, tomorrow) == 4.0
        assert live.used_seconds(session, bob, today) == 1.0
        assert live.allowance(session, alice, get_plan("free"), today) == 180 - 22.5
        assert live.allowance(session, alice, get_plan("pro"), today) == 120 * 60 - 22.5
        assert len(session.scalars(select(LiveUsage)).all()) == 3
    live.meter(db, alice, today, 1000.0)
    with db.read() as session:
        assert live.allowance(session, alice, get_plan("free"), today) == 0.0


def test_days_are_utc_days() -> None:
    just_before_midnight = 1_798_761_599.5  # 2026-12-31 23:59:59.5 UTC
    assert live.utc_day(just_before_midnight) == date(2026, 12, 31)
    assert live.utc_day(just_before_midnight + 1) == date(2027, 1, 1)
    assert live.seconds_to_midnight(just_before_midnight) == 0.5


def test_plans_state_their_live_minutes() -> None:
    assert {plan.id: plan.live_minutes_per_day for plan in PLANS.values()} == {
        "free": 3.0,
        "basic": 30.0,
        "pro": 120.0,
    }
    for plan in PLANS.values():
        assert f"Live mode: {plan.live_minutes_per_day:g} min a day" in plan.features
