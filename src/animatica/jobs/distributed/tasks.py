"""The Celery tasks: each runs one stage (`stages`) and settles its job when the stage fails.

A failure is settled by `lifecycle.settle`, as in-process: an overrun of the task's soft time
limit fails the job with the in-process words for a time limit, a problem with the job's input
fails it with its own message, and anything else is retried with backoff before the job fails.
The job's credit is returned in every case.
"""

import logging
import os

from celery import Task, shared_task
from celery.exceptions import Retry, SoftTimeLimitExceeded

from animatica.jobs import lifecycle
from animatica.jobs.distributed import stages
from animatica.jobs.distributed.dispatch import JOIN, PREPARE, RUN, SEGMENT
from animatica.jobs.distributed.worker import WORKER_ID, Context, context
from animatica.jobs.messages import time_limit_message
from animatica.settings import Settings

log = logging.getLogger("animatica.jobs")


def _backoff(retries: int) -> float:
    return float(min(600, 2 ** (retries + 1)))


def _soft_limit(task: Task, settings: Settings) -> float:
    """The soft time limit this run of ``task`` had: its message's, else the workers' default."""
    limits = task.request.timelimit or (None, None)
    return float(limits[1] or settings.task_soft_time_limit)


def _overrun(task: Task, ctx: Context, error: BaseException) -> str | None:
    """The user's message when ``error`` is the task overrunning its soft limit."""
    if not isinstance(error, SoftTimeLimitExceeded):
        return None
    limit = _soft_limit(task, ctx.settings)
    log.warning("task overran its time limit", extra={"limit": limit})
    return time_limit_message(limit)


def _retry(task: Task, ctx: Context, job_id: str, error: BaseException) -> None:
    """Retry a task that hit an unexpected error, with backoff (raises); after the last retry, return
    and let the job fail."""
    if task.request.retries < ctx.settings.task_max_retries:
        log.warning("task failed, retrying", extra={"job_id": job_id, "error": repr(error)})
        raise task.retry(exc=error, countdown=_backoff(task.request.retries))
    log.error("task failed for good", extra={"job_id": job_id, "error": repr(error)})


def task_failed(task: Task, ctx: Context, job_id: str, error: BaseException) -> None:
    """Settle the job of a stage that raised ``error`` (ending it cleans its segments up)."""
    lifecycle.settle(
        ctx.db,
        job_id,
        WORKER_ID,
        error,
        overrun=lambda e: _overrun(task, ctx, e),
        retry=lambda e: _retry(task, ctx, job_id, e),
        end=lambda message, status: stages.end(ctx, job_id, message, status),
    )


@shared_task(name=PREPARE, bind=True)
def prepare_task(self: Task, job_id: str) -> None:
    ctx = context()
    try:
        stages.prepare(ctx, job_id)
    except Exception as error:
        task_failed(self, ctx, job_id, error)


@shared_task(name=RUN, bind=True)
def run_task(self: Task, job_id: str) -> None:
    ctx = context()
    try:
        stages.run_whole(
            ctx,
            job_id,
            overrun=lambda e: _overrun(self, ctx, e),
            retry=lambda e: _retry(self, ctx, job_id, e),
        )
    except Retry:
        raise
    except Exception as error:  # before the job ran (the claim itself failed)
        task_failed(self, ctx, job_id, error)


@shared_task(name=SEGMENT, bind=True)
def segment_task(self: Task, job_id: str, index: int) -> None:
    ctx = context()
    try:
        stages.run_segment(ctx, job_id, index, worker=f"{self.request.hostname}:{os.getpid()}")
    except Exception as error:
        task_failed(self, ctx, job_id, error)


@shared_task(name=JOIN, bind=True)
def join_task(self: Task, job_id: str) -> None:
    ctx = context()
    try:
        stages.join(ctx, job_id)
    except Exception as error:
        task_failed(self, ctx, job_id, error)
