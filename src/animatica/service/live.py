"""Live sessions: opening them, the registry of open ones, and metering their minutes.

A session is opened by a request (`open_session`: the portrait checked like any upload, the
engine, size and format chosen, the limits checked) and then run by the WebSocket that takes it
(`animatica.service.live_socket`). Its row in ``live_sessions`` is the registry: any web process
can take the WebSocket of a session another one opened, and a user's open sessions are counted
there, so the per-user limit holds however many processes serve. A session that is never
connected stops counting after `CONNECT_SECONDS`; one whose process died, once it has not been
seen for `STALE_SECONDS` (`sweep` ends both).

Live minutes are metered per user and UTC day in ``live_usage``: every `METER_SECONDS` of a
running session and at its end. A session is refused when the plan's minutes for the day are
used up (429, with Retry-After until midnight UTC: the refusal is about time, and waiting
lifts it), and a running session is ended, with a message saying why, when they run out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import UploadFile
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from animatica.db import ledger
from animatica.db.models import LiveSession, LiveUsage
from animatica.db.session import Database
from animatica.engines import REQUESTABLE, unknown_engine_message
from animatica.errors import AnimaticaError
from animatica.service.context import ServiceContext
from animatica.service.deps import CurrentUser
from animatica.service.errors import Conflict, Invalid, NotFound
from animatica.service.pictures import store_picture
from animatica.service.plans import Plan, get_plan
from animatica.service.ratelimit import SUBMIT_ACCOUNT, RetryLater, rate_limits
from animatica.settings import Settings
from animatica.storage.base import Storage

if TYPE_CHECKING:
    from animatica.service.live_socket import LiveRun

CONNECT_SECONDS = 60.0  # a session whose WebSocket does not arrive in this time is void
AUTH_SECONDS = 5.0  # a WebSocket without credentials must send its token this soon
METER_SECONDS = 10.0  # live seconds are written to the database this often
STALE_SECONDS = 3 * METER_SECONDS  # a running session not seen this long belongs to a dead process
TICK_SECONDS = 1.0  # stats to the viewer, and the allowance checked, this often
MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 128, 512, 256
FORMATS = ("jpeg", "webp")

NO_SESSION = "There is no such live session; start a new one."
USED_UP = (
    "Your live minutes for today are used up; they renew at midnight UTC, and bigger plans include more."
)

Clock = Callable[[], float]  # seconds since the epoch


class LiveMinutesUsedUp(RetryLater):
    """The plan's live minutes for today are spent: try again after midnight UTC (429)."""


# --- time --------------------------------------------------------------------------------------------


def at(clock_seconds: float) -> datetime:
    return datetime.fromtimestamp(clock_seconds, UTC)


def utc_day(clock_seconds: float) -> date:
    return at(clock_seconds).date()


def seconds_to_midnight(clock_seconds: float) -> float:
    moment = at(clock_seconds)
    midnight = datetime.combine(moment.date() + timedelta(days=1), datetime.min.time(), UTC)
    return (midnight - moment).total_seconds()


# --- usage -------------------------------------------------------------------------------------------


def used_seconds(session: Session, user_id: int, day: date) -> float:
    value = session.scalar(
        select(LiveUsage.seconds).where(LiveUsage.user_id == user_id, LiveUsage.day == day)
    )
    return float(value or 0.0)


def allowance(session: Session, user_id: int, plan: Plan, day: date) -> float:
    """Seconds of live animation ``plan`` still allows the user on ``day``."""
    return max(0.0, plan.live_minutes_per_day * 60.0 - used_seconds(session, user_id, day))


def meter(db: Database, user_id: int, day: date, seconds: float) -> None:
    """Add ``seconds`` to the user's live usage of ``day``.

    The user's row is locked first, as for credits, so two sessions metering at once add up
    rather than both inserting the day's first row.
    """
    if seconds <= 0:
        return
    with db.transaction() as session:
        ledger.lock_user(session, user_id)
        changed = session.execute(
            update(LiveUsage)
            .where(LiveUsage.user_id == user_id, LiveUsage.day == day)
            .values(seconds=LiveUsage.seconds + seconds)
        ).rowcount
        if not changed:
            session.add(LiveUsage(user_id=user_id, day=day, seconds=seconds))


# --- the registry ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveTicket:
    """A session as opened: what its WebSocket needs to run it."""

    id: str
    user_id: int
    engine: str
    size: int
    format: str
    record: bool
    source_key: str
    source_name: str


def _ticket(row: LiveSession) -> LiveTicket:
    return LiveTicket(
        row.id, row.user_id, row.engine, row.size, row.format, row.record, row.source_key, row.source_name
    )


def _open(now: float) -> Any:
    """Sessions that count as open at ``now``: waiting for their WebSocket, or running and seen lately."""
    return and_(
        LiveSession.ended_at.is_(None),
        or_(
            and_(
                LiveSession.connected_at.is_(None),
                LiveSession.created_at > at(now - CONNECT_SECONDS),
            ),
            and_(
                LiveSession.connected_at.is_not(None),
                LiveSession.seen_at > at(now - STALE_SECONDS),
            ),
        ),
    )


def open_count(session: Session, user_id: int, now: float) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(LiveSession).where(LiveSession.user_id == user_id, _open(now))
        )
        or 0
    )


def check_owner(db: Database, session_id: str, user_id: int, now: float) -> LiveTicket:
    """The session ``session_id`` if it is the user's and still waits for its WebSocket; NotFound
    otherwise, with the same words whether it never existed, is someone else's or has expired."""
    with db.read() as session:
        row = session.scalar(
            select(LiveSession).where(
                LiveSession.id == session_id,
                LiveSession.user_id == user_id,
                LiveSession.ended_at.is_(None),
                LiveSession.connected_at.is_(None),
                LiveSession.created_at > at(now - CONNECT_SECONDS),
            )
        )
    if row is None:
        raise NotFound(NO_SESSION)
    return _ticket(row)


def connect(db: Database, session_id: str, user_id: int, now: float) -> LiveTicket:
    """Take the session for one WebSocket: `check_owner`, then marked connected, once (a second
    WebSocket for the same session finds it taken, as if it did not exist)."""
    ticket = check_owner(db, session_id, user_id, now)
    with db.transaction() as session:
        taken = session.execute(
            update(LiveSession)
            .where(LiveSession.id == session_id, LiveSession.connected_at.is_(None))
            .values(connected_at=at(now), seen_at=at(now))
        ).rowcount
    if taken != 1:
        raise NotFound(NO_SESSION)
    return ticket


def seen(db: Database, session_id: str, now: float) -> None:
    with db.transaction() as session:
        session.execute(update(LiveSession).where(LiveSession.id == session_id).values(seen_at=at(now)))


def end_session(
    db: Database, session_id: str, now: float, reason: str, recording_job: str | None = None
) -> None:
    with db.transaction() as session:
        session.execute(
            update(LiveSession)
            .where(LiveSession.id == session_id, LiveSession.ended_at.is_(None))
            .values(ended_at=at(now), end_reason=reason[:255], recording_job=recording_job)
        )


def sweep(db: Database, storage: Storage, now: float) -> int:
    """End the sessions that no longer count as open (never connected, or their process died) and
    delete their portraits; returns how many were ended."""
    with db.transaction() as session:
        rows = session.execute(
            select(LiveSession.id, LiveSession.source_key).where(LiveSession.ended_at.is_(None), ~_open(now))
        ).all()
        if rows:
            session.execute(
                update(LiveSession)
                .where(LiveSession.id.in_([row.id for row in rows]), LiveSession.ended_at.is_(None))
                .values(ended_at=at(now), end_reason="expired")
            )
    for row in rows:
        storage.delete(row.source_key)
    return len(rows)


# --- opening a session ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    ticket: LiveTicket
    seconds_left: float

    def view(self) -> dict[str, Any]:
        t = self.ticket
        return {
            "id": t.id,
            "engine": t.engine,
            "size": t.size,
            "format": t.format,
            "record": t.record,
            "ws": f"/api/v1/live?session={t.id}",
            "seconds_left": round(self.seconds_left, 1),
            "expires_in": int(CONNECT_SECONDS),
        }


def live_engine_name(settings: Settings, requested: str) -> str:
    """The concrete engine a live session runs on; Invalid (422) when this server cannot run it."""
    from animatica.jobs.engine_choice import concrete_engine

    requested = (requested or "landmarks").strip().lower()
    if requested not in REQUESTABLE:  # animation engines only: a face swap is not a live portrait
        raise Invalid(unknown_engine_message(requested))
    try:
        return concrete_engine(settings, requested)
    except AnimaticaError as error:
        message = str(error)
        raise Invalid(message[:1].upper() + message[1:]) from error


def checked_choices(settings: Settings, engine: str, size: int, fmt: str) -> tuple[str, int, str]:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise Invalid(f"The live size must be between {MIN_SIZE} and {MAX_SIZE} pixels, not {size}.")
    fmt = (fmt or "jpeg").strip().lower()
    if fmt not in FORMATS:
        raise Invalid(f"Frames are sent as {' or '.join(FORMATS)}, not {fmt!r}.")
    return live_engine_name(settings, engine), size, fmt


def _check_limits(session: Session, user_id: int, plan: Plan, settings: Settings, now: float) -> float:
    """Seconds left today; Conflict (409) with too many sessions open, LiveMinutesUsedUp (429)."""
    if open_count(session, user_id, now) >= settings.live_sessions_per_user:
        if settings.live_sessions_per_user == 1:
            raise Conflict(
                "You already have a live session open; stop it (or close its tab) before starting another."
            )
        raise Conflict(
            f"You already have {settings.live_sessions_per_user} live sessions open, the most allowed at "
            "once; stop one before starting another."
        )
    left = allowance(session, user_id, plan, utc_day(now))
    if left <= 0:
        raise LiveMinutesUsedUp(USED_UP, seconds_to_midnight(now))
    return left


def open_session(
    ctx: ServiceContext,
    user: CurrentUser,
    *,
    source: UploadFile | None = None,
    source_job: str | None = None,
    engine: str = "landmarks",
    size: int = DEFAULT_SIZE,
    fmt: str = "jpeg",
    record: bool = False,
    now: float | None = None,
) -> Opened:
    """Check everything a session needs and register it; its WebSocket must connect within
    `CONNECT_SECONDS`. The portrait is an upload (checked as every upload is) or the picture of one
    of the user's jobs (another user's job is not found, as a missing one). Counts against the
    submission limit: checking a portrait costs the server work even when it is refused."""
    hub = live_hub(ctx)
    now = hub.clock() if now is None else now
    rate_limits(ctx).hit(SUBMIT_ACCOUNT, str(user.id))
    engine, size, fmt = checked_choices(ctx.settings, engine, size, fmt)
    plan = get_plan(user.plan_id)
    sweep(ctx.db, ctx.storage, now)
    with ctx.db.read() as session:
        _check_limits(session, user.id, plan, ctx.settings, now)
    has_upload = source is not None and bool(source.filename)
    if has_upload and source_job:
        raise Invalid("Choose one portrait: upload a picture or pick one of your jobs, not both.")
    if not has_upload and not source_job:
        raise Invalid("Choose a portrait to animate (JPG, PNG or WebP).")
    session_id = uuid.uuid4().hex
    key = f"live/{session_id}/source.png"
    name = store_picture(
        ctx, user.id, plan, key, upload=source if has_upload else None, from_job=source_job, what="portrait"
    ).name
    try:
        with ctx.db.transaction() as session:
            ledger.lock_user(session, user.id)  # two opens at once: the second sees the first
            left = _check_limits(session, user.id, plan, ctx.settings, now)
            session.add(
                LiveSession(
                    id=session_id,
                    user_id=user.id,
                    engine=engine,
                    size=size,
                    format=fmt,
                    record=record,
                    source_key=key,
                    source_name=name,
                    created_at=at(now),
                )
            )
    except BaseException:
        ctx.storage.delete(key)
        raise
    return Opened(LiveTicket(session_id, user.id, engine, size, fmt, record, key, name), left)


# --- the app's hub ------------------------------------------------------------------------------------


@dataclass
class LiveHub:
    """The live sessions of one app: where their time comes from, how often they report, and the
    sessions this process runs (so a shutdown can end them)."""

    clock: Clock = time.time
    tick_seconds: float = TICK_SECONDS
    meter_seconds: float = METER_SECONDS
    auth_seconds: float = AUTH_SECONDS
    running: dict[str, LiveRun] = field(default_factory=dict)


_HUB_KEY = "live_hub"


def live_hub(ctx: ServiceContext) -> LiveHub:
    """The app's hub (tests put their own, with a clock of their choosing, under the same key)."""
    found = ctx.extra.get(_HUB_KEY)
    if not isinstance(found, LiveHub):
        found = LiveHub()
        ctx.extra[_HUB_KEY] = found
    return found
