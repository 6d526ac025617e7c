"""Submitting and re-running as plain functions, without HTTP: the options are checked once and
stored with a concrete engine; a re-run copies the stored inputs inside the store (never through
the server), is charged and limited as a new job under the current plan, and says clearly when
the inputs are gone."""

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import UploadFile
from sqlalchemy import update

from animatica.db import ledger
from animatica.db.models import Job, User
from animatica.jobs.options import JobOptions
from animatica.service.animations import load_job
from animatica.service.context import ServiceContext, build_context
from animatica.service.deps import CurrentUser
from animatica.service.errors import Gone, Invalid, NotFound
from animatica.service.plans import get_plan
from animatica.service.submit import plan_frame_limit, rerun, runnable, submit
from animatica.settings import Settings


@pytest.fixture
def ctx(settings: Settings, executor: Any) -> Iterator[ServiceContext]:
    context = build_context(settings, executor)  # the runner is never started: jobs stay queued
    yield context
    context.db.dispose()


def _user(ctx: ServiceContext, name: str, credits: int = 3, plan: str = "free") -> CurrentUser:
    from animatica.service.accounts import signup

    user_id = signup(ctx.db, name, "password-long-enough", credits)
    _plan(ctx, user_id, plan)
    return CurrentUser(user_id, name, plan, "")


def _plan(ctx: ServiceContext, user_id: int, plan: str) -> None:
    with ctx.db.transaction() as session:
        session.execute(update(User).where(User.id == user_id).values(plan_id=plan))


def _credits(ctx: ServiceContext, user: CurrentUser) -> int:
    with ctx.db.read() as session:
        return ledger.balance(session, user.id)


def _submit(ctx: ServiceContext, user: CurrentUser, media: dict[str, Path], options: JobOptions) -> str:
    with media["image"].open("rb") as image, media["video"].open("rb") as video:
        return submit(
            ctx,
            user,
            UploadFile(image, filename="face.png"),
            UploadFile(video, filename="drive.mp4"),
            options,
        )


def _bytes(ctx: ServiceContext, key: str) -> bytes:
    return b"".join(ctx.storage.read_range(key, 0, ctx.storage.size(key) - 1))


def _stored(settings: Settings) -> list[str]:
    root = Path(settings.storage_url.removeprefix("file://"))
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_submit_stores_the_concrete_engine_and_the_clips_measured_limits(
    ctx: ServiceContext, media: dict[str, Path]
) -> None:
    alice = _user(ctx, "alice")
    job = load_job(ctx, alice.id, _submit(ctx, alice, media, JobOptions(relative=False, fit="pad")))
    assert job.engine == "landmarks"  # auto, resolved once: the record says what runs
    stored = JobOptions.from_row(job.engine, job.options)
    assert stored.relative is False and stored.fit == "pad"
    # The fixture's clip runs at 8 fps and the free plan allows 15 s.
    assert stored.frame_rate == 8.0 and stored.max_frames == plan_frame_limit(get_plan("free"), stored) == 121


def test_rerun_copies_the_inputs_in_the_store_and_charges_a_new_job(
    ctx: ServiceContext, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = _user(ctx, "alice")
    first = _submit(ctx, alice, media, JobOptions(relative=False, crop_face=True, fit="stretch"))
    assert _credits(ctx, alice) == 2

    def no_download(key: str, destination: Path) -> None:
        raise AssertionError(f"re-run downloaded {key}")

    monkeypatch.setattr(ctx.storage, "get_file", no_download)
    second = rerun(ctx, alice, first)
    assert second != first and _credits(ctx, alice) == 1
    old, new = load_job(ctx, alice.id, first), load_job(ctx, alice.id, second)
    assert (new.source_key, new.driving_key) == (f"jobs/{second}/source.png", f"jobs/{second}/driving.mp4")
    assert _bytes(ctx, new.source_key) == _bytes(ctx, old.source_key)
    assert _bytes(ctx, new.driving_key) == _bytes(ctx, old.driving_key)
    assert (new.engine, new.options) == (old.engine, old.options)
    assert (new.source_name, new.driving_name, new.status) == ("face.png", "drive.mp4", "queued")

    mallory = _user(ctx, "mallory")
    with pytest.raises(NotFound):
        rerun(ctx, mallory, first)


def test_rerun_counts_the_length_limit_and_priority_of_the_current_plan(
    ctx: ServiceContext, media: dict[str, Path]
) -> None:
    alice = _user(ctx, "alice", credits=5)
    first = _submit(ctx, alice, media, JobOptions())
    _plan(ctx, alice.id, "pro")  # 300 s, priority 2
    pro = dataclasses.replace(alice, plan_id="pro")
    upgraded = load_job(ctx, alice.id, rerun(ctx, pro, first))
    assert upgraded.options["max_frames"] == 300 * 8 + 1 and upgraded.priority == 2

    # A row that holds no frame rate keeps the limit its first run was checked against.
    with ctx.db.transaction() as session:
        session.execute(update(Job).where(Job.id == first).values(options={"max_frames": 121}))
    kept = load_job(ctx, alice.id, rerun(ctx, pro, first))
    assert kept.options["max_frames"] == 121


def test_rerun_of_deleted_inputs_is_gone_and_costs_nothing(
    ctx: ServiceContext, media: dict[str, Path], settings: Settings
) -> None:
    alice = _user(ctx, "alice")
    first = _submit(ctx, alice, media, JobOptions())
    job = load_job(ctx, alice.id, first)
    # Retention removes the files before it clears the keys; a re-run in between finds no file.
    ctx.storage.delete(job.driving_key or "")
    with pytest.raises(Gone, match="upload them again"):
        rerun(ctx, alice, first)
    assert _stored(settings) == [f"jobs/{first}/source.png"]  # the half-made copy is removed
    with ctx.db.transaction() as session:
        session.execute(update(Job).where(Job.id == first).values(source_key=None, driving_key=None))
    with pytest.raises(Gone, match="deleted after 24 hours; upload them again"):
        rerun(ctx, alice, first)
    assert _credits(ctx, alice) == 2


def test_rerun_refuses_an_engine_this_server_no_longer_runs_before_charging(
    ctx: ServiceContext, media: dict[str, Path], settings: Settings
) -> None:
    alice = _user(ctx, "alice")
    first = _submit(ctx, alice, media, JobOptions())
    with ctx.db.transaction() as session:
        session.execute(update(Job).where(Job.id == first).values(engine="fomm"))
    lacking = dataclasses.replace(ctx, settings=settings.model_copy(update={"fomm_checkpoint": ""}))
    with pytest.raises(Invalid, match="The fomm engine is turned off"):
        rerun(lacking, alice, first)
    assert _credits(ctx, alice) == 2 and len(_stored(settings)) == 2


def test_runnable_resolves_auto_once_with_the_operators_settings(settings: Settings) -> None:
    assert runnable(settings, JobOptions()).engine == "landmarks"
    assert runnable(settings, JobOptions(engine="landmarks", fit="pad")).fit == "pad"
    off = settings.model_copy(update={"fomm_checkpoint": ""})
    with pytest.raises(Invalid, match=r"^The fomm engine is turned off"):
        runnable(off, JobOptions(engine="fomm"))
