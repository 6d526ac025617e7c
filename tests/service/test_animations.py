"""The functions behind both the jobs API and the pages (cancel, delete, history, result), called
directly, without HTTP: the routes only translate them."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from tests.conftest import add_job

from animatica.db import ledger
from animatica.db.models import Job
from animatica.jobs import state
from animatica.service import animations
from animatica.service.accounts import signup
from animatica.service.context import ServiceContext, build_context
from animatica.service.errors import Conflict, Gone, NotFound
from animatica.settings import Settings


@pytest.fixture
def ctx(settings: Settings, executor: Any) -> Iterator[ServiceContext]:
    context = build_context(settings, executor)  # the runner is never started: jobs stay put
    yield context
    context.db.dispose()


def _queued(ctx: ServiceContext, user_id: int, media: dict[str, Path], name: str) -> str:
    job_id = f"{name:0<32}"
    ctx.storage.put_file(f"jobs/{job_id}/source.png", media["image"])
    ctx.storage.put_file(f"jobs/{job_id}/driving.mp4", media["video"])
    return add_job(ctx.db, user_id, job_id)


def _set(ctx: ServiceContext, job_id: str, **values: Any) -> None:
    with ctx.db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def _credits(ctx: ServiceContext, user_id: int) -> int:
    with ctx.db.transaction() as session:
        return ledger.balance(session, user_id)


def _stored(ctx: ServiceContext, settings: Settings) -> list[str]:
    root = Path(settings.storage_url.removeprefix("file://"))
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_cancel_returns_the_credit_once_and_only_for_the_owner(
    ctx: ServiceContext, media: dict[str, Path]
) -> None:
    alice = signup(ctx.db, "alice", "password-long-enough", 3)
    mallory = signup(ctx.db, "mallory", "password-long-enough", 3)
    job_id = _queued(ctx, alice, media, "a")
    assert _credits(ctx, alice) == 2
    with pytest.raises(NotFound):
        animations.cancel(ctx, mallory, job_id)
    assert animations.cancel(ctx, alice, job_id).status == state.CANCELED
    assert _credits(ctx, alice) == 3
    with pytest.raises(Conflict, match="already canceled"):
        animations.cancel(ctx, alice, job_id)
    assert _credits(ctx, alice) == 3

    running = _queued(ctx, alice, media, "b")
    _set(ctx, running, status=state.RUNNING, worker_id="w")
    job = animations.cancel(ctx, alice, running)
    assert job.status == state.RUNNING and job.cancel_requested  # the worker stops it and refunds
    assert _credits(ctx, alice) == 2


def test_remove_deletes_row_and_files_but_never_a_running_job(
    ctx: ServiceContext, media: dict[str, Path], settings: Settings
) -> None:
    alice = signup(ctx.db, "alice", "password-long-enough", 3)
    queued, running = _queued(ctx, alice, media, "a"), _queued(ctx, alice, media, "b")
    _set(ctx, running, status=state.RUNNING, worker_id="w")
    with pytest.raises(Conflict, match="running"):
        animations.remove(ctx, alice, running)
    animations.remove(ctx, alice, queued)  # canceled first, so its credit comes back
    assert _credits(ctx, alice) == 2
    with pytest.raises(NotFound):
        animations.load_job(ctx, alice, queued)
    assert _stored(ctx, settings) == [f"jobs/{running}/driving.mp4", f"jobs/{running}/source.png"]
    mallory = signup(ctx.db, "mallory", "password-long-enough", 3)
    _set(ctx, running, status=state.FAILED)
    with pytest.raises(NotFound):
        animations.remove(ctx, mallory, running)
    animations.remove(ctx, alice, running)
    assert _stored(ctx, settings) == []


def test_history_pages_and_result_states(ctx: ServiceContext, media: dict[str, Path]) -> None:
    alice = signup(ctx.db, "alice", "password-long-enough", 5)
    bob = signup(ctx.db, "bob", "password-long-enough", 5)
    ids = [_queued(ctx, alice, media, name) for name in "abc"]
    _queued(ctx, bob, media, "d")
    first, second = animations.history(ctx, alice, 2, 0), animations.history(ctx, alice, 2, 2)
    assert first.total == second.total == 3
    assert {job.id for job in first.jobs + second.jobs} == set(ids) and len(second.jobs) == 1

    with pytest.raises(Conflict, match="queued"):
        animations.result_key(ctx, alice, ids[0])
    _set(ctx, ids[0], status=state.SUCCEEDED, result_key=f"jobs/{ids[0]}/result.mp4")
    assert animations.result_key(ctx, alice, ids[0]) == f"jobs/{ids[0]}/result.mp4"
    view = animations.job_view(animations.load_job(ctx, alice, ids[0]))
    assert view.result_url == f"/api/v1/animations/{ids[0]}/result"
    with pytest.raises(NotFound):
        animations.result_key(ctx, bob, ids[0])
    _set(ctx, ids[0], result_key=None)
    with pytest.raises(Gone):
        animations.result_key(ctx, alice, ids[0])
