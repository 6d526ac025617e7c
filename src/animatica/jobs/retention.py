"""Retention: uploaded inputs and results are personal data, kept only as long as useful.

Inputs of finished jobs go after ``input_retention_hours``, results after
``result_retention_days``; the job row stays as history, with the result marked expired.
"""

import logging
from datetime import timedelta

from sqlalchemy import or_, select, update

from animatica.db.models import Job
from animatica.db.session import Database
from animatica.db.types import utcnow
from animatica.jobs import state
from animatica.jobs.state import FINAL
from animatica.settings import Settings
from animatica.storage.base import Storage

log = logging.getLogger("animatica.jobs")


def purge_expired(db: Database, storage: Storage, settings: Settings) -> int:
    """Delete expired files; returns how many were deleted."""
    now = utcnow()
    input_cutoff = now - timedelta(hours=settings.input_retention_hours)
    result_cutoff = now - timedelta(days=settings.result_retention_days)
    deleted = 0
    with db.transaction() as session:
        inputs = session.execute(
            select(Job.id, Job.source_key, Job.driving_key).where(
                Job.status.in_(FINAL),
                Job.finished_at < input_cutoff,
                or_(Job.source_key.is_not(None), Job.driving_key.is_not(None)),
            )
        ).all()
        results = session.execute(
            select(Job.id, Job.result_key).where(
                Job.status.in_(FINAL), Job.finished_at < result_cutoff, Job.result_key.is_not(None)
            )
        ).all()
    for row in inputs:
        for key in (row.source_key, row.driving_key):
            if key:
                storage.delete(key)
                deleted += 1
        with db.transaction() as session:
            session.execute(update(Job).where(Job.id == row.id).values(source_key=None, driving_key=None))
    for row in results:
        storage.delete(row.result_key)
        deleted += 1
        state.expire_result(db, row.id)
    if deleted:
        log.info("retention deleted files", extra={"files": deleted})
    return deleted
