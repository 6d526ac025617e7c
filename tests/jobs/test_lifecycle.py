"""The state machine's transitions for Celery workers (claim or resume one job, dispatched, stage),
the watch's stall bound, and `state` as the one writer of a job's status and stage."""

import re
import time
from datetime import timedelta
from pathlib import Path

from tests.conftest import add_job

from animatica.db import Database
from animatica.db.types import utcnow
from animatica.jobs import state
from animatica.jobs.bounds import JobBounds
from animatica.jobs.child import Started
from animatica.jobs.lifecycle import Watch
from animatica.jobs.messages import stall_message
from animatica.service.accounts import signup

SRC = Path(__file__).resolve().parents[2] / "src" / "animatica"


def _queued(db: Database, job_id: str = "j1") -> str:
    user = signup(db, f"owner-{job_id}", "password-long-enough", 3)
    return add_job(db, user, job_id, priority=2)


def _stage(db: Database, job_id: str) -> tuple[str | None, str | None]:
    from animatica.db.models import Job

    with db.read() as session:
        job = session.get(Job, job_id)
        return (job.status, job.stage) if job is not None else (None, None)


def test_a_worker_claims_a_job_once_and_resumes_it_on_a_second_delivery(db: Database) -> None:
    job_id = _queued(db)
    first = state.claim(db, job_id, "celery", "preparing")
    assert first is not None and first.attempts == 1 and first.priority == 2
    again = state.claim(db, job_id, "celery", "preparing")  # the same task delivered twice
    assert again is not None and again.attempts == 1
    assert state.claim(db, job_id, "someone-else", "preparing") is None
    assert state.fail(db, job_id, "celery", "boom")
    assert state.claim(db, job_id, "celery", "preparing") is None  # ended: not to run again
    assert state.claim(db, "no-such-job", "celery", "preparing") is None


def test_dispatch_is_recorded_once_and_undispatched_jobs_are_found(db: Database) -> None:
    sent = _queued(db, "sent")
    _queued(db, "unsent")
    later = utcnow() + timedelta(seconds=1)
    assert sorted(state.undispatched(db, later)) == [("sent", 2), ("unsent", 2)]
    assert state.mark_dispatched(db, sent)
    assert not state.mark_dispatched(db, sent)
    assert _stage(db, sent) == (state.QUEUED, state.DISPATCHED)
    assert state.undispatched(db, later) == [("unsent", 2)]
    assert state.undispatched(db, utcnow() - timedelta(hours=1)) == []  # too recent to resend


def test_only_the_holder_names_a_running_jobs_stage(db: Database) -> None:
    job_id = _queued(db)
    assert not state.set_stage(db, job_id, "celery", "animating")  # still queued
    assert state.claim(db, job_id, "celery", "preparing") is not None
    assert not state.set_stage(db, job_id, "other", "animating")
    assert state.set_stage(db, job_id, "celery", "animating")
    assert _stage(db, job_id) == (state.RUNNING, "animating")


def test_the_stall_bound_counts_from_the_jobs_first_report(db: Database) -> None:
    job_id = _queued(db)
    assert state.claim(db, job_id, "w", "starting") is not None
    watch = Watch(db, job_id, "w", bounds=JobBounds(stall_seconds=5.0))
    # Before its process took the job (a fresh child still loading), silence is not a stall.
    assert watch._overrun(time.monotonic() + 60) is None
    watch.on_progress(Started())
    assert _stage(db, job_id) == (state.RUNNING, "starting")
    assert watch._overrun(time.monotonic() + 1) is None
    assert watch._overrun(time.monotonic() + 60) == stall_message(5.0)


def test_only_the_state_machine_writes_a_jobs_status_and_stage() -> None:
    """Every transition is guarded in `state`; a write elsewhere could skip the guard."""
    writes = re.compile(r"update\(Job\)(?:(?!\n\n).)*?\.values\([^)]*\b(status|stage|worker_id)=", re.S)
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "state.py" and writes.search(path.read_text())
    ]
    assert offenders == []
