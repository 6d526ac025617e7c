"""Time limits of distributed tasks: the bound a segment's message carries, and what an overrun does.

A segment is bounded like an in-process job of its length (``JobBounds``); a fixed
``job_timeout_seconds`` bounds every task. A task that overruns fails its job with the in-process
runner's words and returns the credit, without the retries an unexpected error gets.
"""

import json
import os
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from kombu import Connection, Queue
from sqlalchemy import select
from tests.conftest import add_job
from tests.jobs.distributed.media_inputs import face_inputs

from animatica.db import Database, ledger, upgrade_to_head
from animatica.db.models import Job
from animatica.errors import MediaError
from animatica.jobs import state
from animatica.jobs.bounds import JobBounds
from animatica.jobs.distributed import dispatch, stages, tasks
from animatica.jobs.distributed.app import MAX_PRIORITY
from animatica.jobs.distributed.worker import WORKER_ID, Context
from animatica.jobs.messages import time_limit_message
from animatica.service.accounts import signup
from animatica.settings import Settings
from animatica.storage import open_storage


def _messages(cluster: Any) -> list[tuple[str, list[Any], list[float | None]]]:
    """(task, args, [hard, soft] time limits) of every message waiting in the cluster's queue."""
    name = cluster.settings.celery_queue
    found = []
    with Connection(cluster.settings.broker_url, connect_timeout=5) as connection:
        channel = connection.default_channel
        while (message := channel.basic_get(queue=name, no_ack=True)) is not None:
            headers = message.properties["application_headers"]
            args, _kwargs, _embed = json.loads(message.body)
            found.append((headers["task"], args, list(headers["timelimit"])))
    return found


def _declare_queue(cluster: Any) -> None:
    """The queue the workers would declare, so that messages sent with no worker running wait there."""
    name = cluster.settings.celery_queue
    with Connection(cluster.settings.broker_url, connect_timeout=5) as connection:
        queue = Queue(name, routing_key=name, queue_arguments={"x-max-priority": MAX_PRIORITY})
        queue(connection.default_channel).declare()


def _prepared_job(cluster: Any, tmp_path: Path) -> str:
    source, driving = face_inputs(tmp_path, frames=60, size=64)
    job_id = cluster.submit(cluster.user("bob"), source, driving, "landmarks", {})
    context = Context(cluster.settings, cluster.db, cluster.storage, os.getpid())
    stages.prepare(context, job_id)  # plans the segments and sends the first ones
    return str(job_id)


@pytest.mark.slow
def test_segment_messages_carry_a_time_limit_that_follows_their_length(
    make_cluster: Any, tmp_path: Path
) -> None:
    cluster = make_cluster("rabbitmq", workers=0, segment_seconds=1.0)
    _declare_queue(cluster)
    job_id = _prepared_job(cluster, tmp_path)
    parts = {part.index: part for part in cluster.segments(job_id)}
    messages = _messages(cluster)

    assert messages[0] == (dispatch.PREPARE, [job_id], [None, None])  # the workers' default
    sent = [message for message in messages if message[0] == dispatch.SEGMENT]
    assert len(sent) == cluster.settings.segments_per_user
    for _task, (sent_job, index), (hard, soft) in sent:
        part = parts[index]
        assert sent_job == job_id and part.stop is not None
        expected = JobBounds().time_limit(part.stop - part.start)
        assert soft == expected and hard == expected + dispatch.KILL_AFTER_SOFT_LIMIT


@pytest.mark.slow
def test_a_fixed_job_timeout_bounds_every_task(make_cluster: Any, tmp_path: Path) -> None:
    cluster = make_cluster("rabbitmq", workers=0, segment_seconds=1.0, job_timeout_seconds=42.0)
    _declare_queue(cluster)
    _prepared_job(cluster, tmp_path)
    messages = _messages(cluster)
    assert {task for task, _args, _limits in messages} == {dispatch.PREPARE, dispatch.SEGMENT}
    assert all(limits == [42.0 + dispatch.KILL_AFTER_SOFT_LIMIT, 42.0] for _t, _a, limits in messages)


# --- an overrun, settled the way a worker settles it ---------------------------------------------


@pytest.fixture
def context(tmp_path: Path) -> Any:
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'animatica.db'}",
        storage_url=(tmp_path / "files").as_uri(),
        task_max_retries=3,
        log_level="WARNING",
    )
    db = Database(settings.database_url)
    upgrade_to_head(db.engine)
    yield Context(settings, db, open_storage(settings.storage_url), os.getpid())
    db.dispose()


def _running_job(context: Any) -> tuple[str, int]:
    user_id = signup(context.db, "carol", "password-long-enough", 3)
    job_id = add_job(context.db, user_id, "job-overrun", driving_name="talk.mp4")
    assert state.claim(context.db, job_id, WORKER_ID, "preparing") is not None
    return job_id, user_id


def _settle(context: Any, job_id: str, error: Exception, timelimit: tuple[Any, Any]) -> None:
    task = tasks.segment_task
    task.push_request(timelimit=timelimit, retries=0)  # what a worker sets for the running task
    try:
        tasks.task_failed(task, context, job_id, error)
    finally:
        task.pop_request()


def _outcome(context: Any, job_id: str, user_id: int) -> tuple[str, str | None, int]:
    with context.db.read() as session:
        row = session.execute(select(Job.status, Job.error).where(Job.id == job_id)).one()
        return row.status, row.error, ledger.balance(session, user_id)


def test_an_overrun_fails_the_job_at_once_with_its_limit_and_returns_the_credit(context: Any) -> None:
    job_id, user_id = _running_job(context)
    _settle(context, job_id, SoftTimeLimitExceeded(), (610.0, 550.0))  # no retry is raised
    assert _outcome(context, job_id, user_id) == (state.FAILED, time_limit_message(550.0), 3)


def test_an_overrun_under_the_workers_default_limit_names_that_limit(context: Any) -> None:
    job_id, user_id = _running_job(context)
    _settle(context, job_id, SoftTimeLimitExceeded(), (None, None))
    limit = context.settings.task_soft_time_limit
    assert _outcome(context, job_id, user_id) == (state.FAILED, time_limit_message(limit), 3)


def test_a_task_error_shows_no_server_path(context: Any) -> None:
    job_id, user_id = _running_job(context)
    error = MediaError(f"{context.settings.home}/work/segment-3/driving.mp4 cannot be decoded")
    _settle(context, job_id, error, (None, None))
    assert _outcome(context, job_id, user_id) == (state.FAILED, "driving.mp4 cannot be decoded", 3)
