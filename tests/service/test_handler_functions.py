"""The plain functions behind the routes and pages (engine list, thumbnails, giving up a wait,
the ML-engine key, balances), called without HTTP: the handlers only translate them."""

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from tests.conftest import add_job

from animatica.jobs import state
from animatica.service import accounts, animations, direct
from animatica.service.context import ServiceContext, build_context
from animatica.service.errors import Forbidden, NotFound
from animatica.settings import Settings


@pytest.fixture
def ctx(settings: Settings, executor: Any) -> Iterator[ServiceContext]:
    context = build_context(settings, executor)  # the runner is never started: jobs stay put
    yield context
    context.db.dispose()


def _queued(ctx: ServiceContext, user_id: int, picture: Path) -> str:
    job_id = "a" * 32
    ctx.storage.put_file(f"jobs/{job_id}/source.png", picture)
    return add_job(ctx.db, user_id, job_id)


def test_engine_list_names_the_engine_auto_runs_on(settings: Settings, tiny_fomm_checkpoint: Path) -> None:
    listing = animations.engine_list(settings.model_copy(update={"fomm_checkpoint": ""}))
    assert listing.default == "landmarks"
    assert [(e.id, e.available) for e in listing.engines] == [
        ("landmarks", True),
        ("fomm", False),
        ("liveportrait", False),
        ("vaegan", True),  # its demo model ships with the package
    ]
    assert "turned off" in (listing.engines[1].reason or "")
    opted_in = settings.model_copy(update={"fomm_checkpoint": str(tiny_fomm_checkpoint), "engine": "fomm"})
    assert animations.engine_list(opted_in).default == "fomm"


def test_thumbnail_is_a_small_jpeg_of_the_owners_picture(ctx: ServiceContext, tmp_path: Path) -> None:
    picture = tmp_path / "face.png"
    Image.new("RGB", (640, 480), (200, 100, 50)).save(picture)
    alice = accounts.signup(ctx.db, "alice", "password-long-enough", 3)
    bob = accounts.signup(ctx.db, "bob", "password-long-enough", 3)
    job_id = _queued(ctx, alice, picture)
    with Image.open(io.BytesIO(animations.thumbnail(ctx, alice, job_id))) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (320, 240)
    with pytest.raises(NotFound):
        animations.thumbnail(ctx, bob, job_id)
    ctx.storage.delete(f"jobs/{job_id}/source.png")
    with pytest.raises(NotFound, match="no longer kept"):
        animations.thumbnail(ctx, alice, job_id)


def test_stop_cancels_a_waiting_job_and_ignores_one_already_over(ctx: ServiceContext, tmp_path: Path) -> None:
    picture = tmp_path / "face.png"
    Image.new("RGB", (8, 8)).save(picture)
    alice = accounts.signup(ctx.db, "alice", "password-long-enough", 3)
    job_id = _queued(ctx, alice, picture)
    assert accounts.balance(ctx.db, alice) == 2
    animations.stop(ctx, alice, job_id)
    assert animations.load_job(ctx, alice, job_id).status == state.CANCELED
    animations.stop(ctx, alice, job_id)  # over already: nothing to do, no error
    assert accounts.balance(ctx.db, alice) == 3


def test_the_ml_engine_key_is_off_when_unset_and_checked_when_set(settings: Settings) -> None:
    with pytest.raises(NotFound, match="not enabled"):
        direct.require_key(settings, "anything")
    keyed = settings.model_copy(update={"ml_engine_key": "k" * 32})
    for wrong in (None, "", "k" * 31):
        with pytest.raises(Forbidden, match="missing or wrong"):
            direct.require_key(keyed, wrong)
    direct.require_key(keyed, "k" * 32)


def test_signup_form_errors_are_the_api_rules_by_field() -> None:
    from animatica.service.pages.account import signup_errors

    assert signup_errors("alice", "long enough", "long enough", "accepted") == {}
    errors = signup_errors("a!", "short", "other", "")
    assert set(errors) == {"username", "password", "confirm", "terms"}
    assert errors["confirm"] == "Passwords don't match" and "Terms of Service" in errors["terms"]
