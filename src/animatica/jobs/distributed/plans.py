"""The plan of a distributed job in the database: its segments, their state, and the join.

``segments`` rows move ``pending → queued → done`` (or ``dropped`` when the job ends early).
``queued`` means handed to the broker or running, so counting a user's ``queued`` rows gives
the segments they have in flight, which the dispatcher keeps under a cap. ``sent`` records
that the broker accepted the message: a row queued but never sent (the broker was down) is
sent again by the reconciler, and since a segment's output has a fixed key, a segment that
runs twice overwrites its own file instead of adding frames.

A plan may name a ``prepared_key``: the state its kind's plan step computed once for all the
segments (stored next to the job's files), which every segment loads instead of computing it again.

The tables are part of the service's schema (``db/models.py``); a plan and its segments are
deleted with their job.
"""

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from animatica.db.models import DistPlan, DistSegment
from animatica.jobs.segments import Segment

PENDING, QUEUED, DONE, DROPPED = "pending", "queued", "done", "dropped"
# join_state: "none" until every segment is done, then "claimed" by the one task that saw the
# last segment finish, "sent" once the broker has the join task.
JOIN_NONE, JOIN_CLAIMED, JOIN_SENT = "none", "claimed", "sent"

plans: Table = DistPlan.__table__  # type: ignore[assignment]
segments: Table = DistSegment.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Plan:
    job_id: str
    user_id: int
    urgency: int
    frame_rate: Fraction
    has_audio: bool
    total_frames: int | None
    segment_count: int
    best_frame: int | None
    join_state: str
    prepared_key: str | None = None


@dataclass(frozen=True)
class SegmentRow:
    job_id: str
    index: int
    start: int
    stop: int | None
    status: str
    attempts: int
    frames: int | None
    urgency: int


def create_plan(
    session: Session,
    *,
    job_id: str,
    user_id: int,
    urgency: int,
    frame_rate: Fraction,
    has_audio: bool,
    total_frames: int | None,
    best_frame: int | None,
    parts: list[Segment],
    now: datetime,
    prepared_key: str | None = None,
) -> bool:
    """Insert the plan and its pending segments; False if the job already has a plan."""
    if session.scalar(select(plans.c.job_id).where(plans.c.job_id == job_id)) is not None:
        return False
    session.execute(
        plans.insert().values(
            job_id=job_id,
            user_id=user_id,
            urgency=urgency,
            rate_num=frame_rate.numerator,
            rate_den=frame_rate.denominator,
            has_audio=has_audio,
            total_frames=total_frames,
            segment_count=len(parts),
            best_frame=best_frame,
            join_state=JOIN_NONE,
            created_at=now,
            # Only when there is one: tables written before the column existed take these rows too.
            **({"prepared_key": prepared_key} if prepared_key else {}),
        )
    )
    session.execute(
        segments.insert(),
        [
            {
                "job_id": job_id,
                "idx": part.index,
                "user_id": user_id,
                "urgency": urgency,
                "start": part.start,
                "stop": part.stop,
                "status": PENDING,
                "sent": False,
                "attempts": 0,
            }
            for part in parts
        ],
    )
    return True


def get_plan(session: Session, job_id: str) -> Plan | None:
    row = session.execute(select(plans).where(plans.c.job_id == job_id)).first()
    if row is None:
        return None
    return Plan(
        job_id=row.job_id,
        user_id=row.user_id,
        urgency=row.urgency,
        frame_rate=Fraction(row.rate_num, row.rate_den),
        has_audio=row.has_audio,
        total_frames=row.total_frames,
        segment_count=row.segment_count,
        best_frame=row.best_frame,
        join_state=row.join_state,
        prepared_key=row.prepared_key,
    )


def _segment(row: object) -> SegmentRow:
    return SegmentRow(
        job_id=row.job_id,  # type: ignore[attr-defined]
        index=row.idx,  # type: ignore[attr-defined]
        start=row.start,  # type: ignore[attr-defined]
        stop=row.stop,  # type: ignore[attr-defined]
        status=row.status,  # type: ignore[attr-defined]
        attempts=row.attempts,  # type: ignore[attr-defined]
        frames=row.frames,  # type: ignore[attr-defined]
        urgency=row.urgency,  # type: ignore[attr-defined]
    )


def get_segment(session: Session, job_id: str, index: int) -> SegmentRow | None:
    row = session.execute(
        select(segments).where(segments.c.job_id == job_id, segments.c.idx == index)
    ).first()
    return None if row is None else _segment(row)


def job_segments(session: Session, job_id: str) -> list[SegmentRow]:
    rows = session.execute(select(segments).where(segments.c.job_id == job_id).order_by(segments.c.idx))
    return [_segment(row) for row in rows]


def start_attempt(session: Session, job_id: str, index: int, worker: str) -> int:
    """Count one more run of a segment; returns the attempt number."""
    session.execute(
        update(segments)
        .where(segments.c.job_id == job_id, segments.c.idx == index)
        .values(attempts=segments.c.attempts + 1, worker=worker[:96])
    )
    return int(
        session.scalar(
            select(segments.c.attempts).where(segments.c.job_id == job_id, segments.c.idx == index)
        )
        or 0
    )


def finish_segment(session: Session, job_id: str, index: int, frames: int, now: datetime) -> bool:
    """Mark a segment done once; a second run of the same segment changes nothing."""
    return (
        session.execute(
            update(segments)
            .where(segments.c.job_id == job_id, segments.c.idx == index, segments.c.status == QUEUED)
            .values(status=DONE, frames=frames, done_at=now)
        ).rowcount
        == 1
    )


def drop_unfinished(session: Session, job_id: str) -> int:
    """Release a finished job's segments that will never run, freeing its owner's slots."""
    return int(
        session.execute(
            update(segments)
            .where(segments.c.job_id == job_id, segments.c.status.in_((PENDING, QUEUED)))
            .values(status=DROPPED)
        ).rowcount
    )


def in_flight(session: Session, user_id: int) -> int:
    return int(
        session.scalar(select(func.count()).where(segments.c.user_id == user_id, segments.c.status == QUEUED))
        or 0
    )


def mark_sent(session: Session, job_id: str, index: int) -> None:
    session.execute(
        update(segments).where(segments.c.job_id == job_id, segments.c.idx == index).values(sent=True)
    )


def claim_join(session: Session, job_id: str, now: datetime) -> bool:
    """True for exactly one caller once every segment of the job is done."""
    left = session.scalar(select(func.count()).where(segments.c.job_id == job_id, segments.c.status != DONE))
    if left:
        return False
    return (
        session.execute(
            update(plans)
            .where(plans.c.job_id == job_id, plans.c.join_state == JOIN_NONE)
            .values(join_state=JOIN_CLAIMED, join_at=now)
        ).rowcount
        == 1
    )


def set_join_state(session: Session, job_id: str, state: str, now: datetime) -> None:
    session.execute(update(plans).where(plans.c.job_id == job_id).values(join_state=state, join_at=now))
