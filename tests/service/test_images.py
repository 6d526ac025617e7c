"""Pictures as jobs: `images.submit_image` without HTTP (the uploads checked and stored in the
job's slots, the credit reserved; a refused prompt or a missing model stores and charges nothing),
``/api/v1/images`` (202 and the job, validation errors, another user's job not found, the
options), and (slow) a picture made by the worker on a tiny pipeline, fetched with a Range."""

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import UploadFile
from fastapi.testclient import TestClient
from PIL import Image
from tests.conftest import load_job

from animatica.db import Database, ledger
from animatica.db.models import Job
from animatica.images.models import ImageModels
from animatica.service import images
from animatica.service.accounts import signup
from animatica.service.context import build_context
from animatica.service.deps import CurrentUser
from animatica.service.errors import Invalid
from animatica.service.submit import rerun
from animatica.settings import Settings

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def png_bytes(size: tuple[int, int] = (80, 60), value: int | None = None) -> bytes:
    rng = np.random.default_rng(3)
    pixels = (
        np.full((size[1], size[0], 3), value, dtype=np.uint8)
        if value is not None
        else rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    )
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(name: str, data: bytes) -> UploadFile:
    return UploadFile(file=io.BytesIO(data), filename=name)


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    """Stands for a diffusers folder: the server offers generating (the worker is off here)."""
    folder = tmp_path / "sd"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    return folder


@pytest.fixture
def blocklist(tmp_path: Path) -> Path:
    path = tmp_path / "blocklist.txt"
    path.write_text("gore\n")
    return path


@pytest.fixture
def service(settings: Settings, model_folder: Path, blocklist: Path, tmp_path: Path) -> Any:
    """A service context (no HTTP), one user with 3 credits, and the operator's models."""
    loras = tmp_path / "loras"
    loras.mkdir()
    (loras / "ink.safetensors").write_bytes(b"")
    settings = settings.model_copy(
        update={
            "diffusion_model": str(model_folder),
            "prompt_blocklist": str(blocklist),
            "lora_dir": str(loras),
            "upload_check_processes": 0,
        }
    )
    ctx = build_context(settings)
    user_id = signup(ctx.db, "painter", "password-long-enough", 3)
    yield ctx, CurrentUser(user_id, "painter", "free", "f"), ImageModels.from_settings(settings)
    ctx.db.dispose()


def balance(db: Database, user_id: int) -> int:
    with db.read() as session:
        return ledger.balance(session, user_id)


def stored_keys(settings: Settings) -> list[str]:
    root = Path(settings.storage_url.removeprefix("file://"))
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_an_inpainting_is_queued_with_its_two_pictures_and_its_credit_reserved(service: Any) -> None:
    ctx, user, models = service
    form = images.ImageForm(
        operation="inpaint", prompt="a red scarf", size="96x64", seed=11, loras=["ink.safetensors:0.6"]
    )
    pictures = images.Pictures.of(
        init_image=upload("me.jpg", png_bytes()), mask=upload("mask.png", png_bytes(value=255))
    )

    job_id = images.submit_image(ctx, user, form, models, pictures)

    job = load_job(ctx.db, job_id)
    assert job.kind == "image" and job.status == "queued" and job.source_name == "a red scarf"
    assert job.options["pictures"] == {"source": "init_image", "driving": "mask"}
    assert job.options["size"] == [96, 64] and job.options["seed"] == 11
    assert job.options["loras"] == [["ink.safetensors", 0.6]]
    assert stored_keys(ctx.settings) == [f"jobs/{job_id}/driving.png", f"jobs/{job_id}/source.png"]
    assert balance(ctx.db, user.id) == 2

    again = rerun(ctx, user, job_id)  # the History's "Re-run": same choices, pictures copied in the store

    copy = load_job(ctx.db, again)
    assert copy.kind == "image" and copy.options == job.options and copy.source_name == job.source_name
    assert stored_keys(ctx.settings) == sorted(
        [
            f"jobs/{job_id}/driving.png",
            f"jobs/{job_id}/source.png",
            f"jobs/{again}/driving.png",
            f"jobs/{again}/source.png",
        ]
    )
    assert balance(ctx.db, user.id) == 1


@pytest.mark.parametrize(
    ("form", "pictures", "expected"),
    [
        (images.ImageForm(prompt="a scene full of gore"), {}, "gore"),
        (images.ImageForm(prompt="a fox", size="huge"), {}, "'huge' is not WIDTHxHEIGHT"),
        (
            images.ImageForm(prompt="a fox", loras=["other.safetensors"]),
            {},
            "no LoRA file 'other.safetensors'",
        ),
        (images.ImageForm(operation="img2img", prompt="a fox"), {}, "needs a picture to start from"),
        (images.ImageForm(prompt="a fox"), {"mask": b"x"}, "does not use a mask"),
        (images.ImageForm(operation="style", prompt=""), {}, "ANIMATICA_VGG_WEIGHTS"),
        (
            images.ImageForm(operation="img2img", prompt="a fox"),
            {"init_image": b"<html>"},
            "starting picture",
        ),
    ],
)
def test_a_refused_submission_stores_nothing_and_costs_nothing(
    service: Any, form: images.ImageForm, pictures: dict[str, bytes], expected: str
) -> None:
    ctx, user, models = service
    sent = images.Pictures.of(**{name: upload(f"{name}.png", data) for name, data in pictures.items()})

    with pytest.raises(Exception) as refused:
        images.submit_image(ctx, user, form, models, sent)

    assert expected in str(refused.value)
    assert getattr(refused.value, "status_code", 422) in (415, 422)
    assert stored_keys(ctx.settings) == []
    assert balance(ctx.db, user.id) == 3
    with ctx.db.read() as session:
        assert session.query(Job).count() == 0


def test_without_a_model_generating_is_refused_naming_the_setting(settings: Settings) -> None:
    ctx = build_context(settings.model_copy(update={"upload_check_processes": 0}))
    user_id = signup(ctx.db, "painter", "password-long-enough", 3)
    models = ImageModels.from_settings(ctx.settings)
    with pytest.raises(Invalid, match="ANIMATICA_DIFFUSION_MODEL"):
        images.submit_image(
            ctx, CurrentUser(user_id, "painter", "free", "f"), images.ImageForm(prompt="a fox"), models
        )
    assert balance(ctx.db, user_id) == 3
    ctx.db.dispose()


# --- over HTTP ------------------------------------------------------------------------------------


@pytest.fixture
def client(make_client: Any, model_folder: Path, blocklist: Path) -> TestClient:
    client: TestClient = make_client(
        worker=False,
        diffusion_model=str(model_folder),
        prompt_blocklist=str(blocklist),
        upload_check_processes=0,
    )
    return client


def test_the_api_queues_a_picture_that_only_its_owner_sees(client: TestClient, api: Any) -> None:
    alice = api.signup_login(client, "alice")
    response = client.post(
        "/api/v1/images",
        headers=api.bearer(alice),
        data={"prompt": "a lighthouse at dusk", "size": "thumbnail", "steps": "20", "seed": "5"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kind"] == "image" and job["status"] == "queued"
    assert response.headers["location"] == f"/api/v1/animations/{job['id']}"
    assert job["options"]["size"] == [1280, 720] and job["options"]["steps"] == 20
    assert api.credits(client, alice) == 2

    mine = client.get(f"/api/v1/animations/{job['id']}", headers=api.bearer(alice))
    assert mine.status_code == 200 and mine.json()["id"] == job["id"]
    bob = api.signup_login(client, "bob")
    assert client.get(f"/api/v1/animations/{job['id']}", headers=api.bearer(bob)).status_code == 404
    assert client.post(f"/api/v1/animations/{job['id']}/cancel", headers=api.bearer(bob)).status_code == 404
    assert client.get(f"/jobs/{job['id']}/thumbnail", headers=api.bearer(bob)).status_code in (401, 404)


def test_the_api_refuses_a_blocked_prompt_and_bad_choices_for_free(client: TestClient, api: Any) -> None:
    alice = api.signup_login(client, "alice")
    refused = client.post("/api/v1/images", headers=api.bearer(alice), data={"prompt": "Gore everywhere"})
    assert refused.status_code == 422 and "gore" in refused.json()["detail"].lower()
    bad = client.post("/api/v1/images", headers=api.bearer(alice), data={"prompt": "a fox", "steps": "0"})
    assert bad.status_code == 422 and "Steps must be from 1" in bad.json()["detail"]
    not_a_picture = client.post(
        "/api/v1/images",
        headers=api.bearer(alice),
        data={"prompt": "a fox", "operation": "img2img"},
        files={"init_image": ("holiday.jpg", b"<!doctype html><html></html>", "image/jpeg")},
    )
    assert not_a_picture.status_code in (415, 422) and "holiday.jpg" in not_a_picture.json()["detail"]
    assert api.credits(client, alice) == 3
    assert client.get("/api/v1/animations", headers=api.bearer(alice)).json()["total"] == 0


def test_the_options_say_what_this_server_offers(client: TestClient, api: Any, model_folder: Path) -> None:
    alice = api.signup_login(client, "alice")
    offer = client.get("/api/v1/images/options", headers=api.bearer(alice)).json()
    assert offer["sizes"]["avatar"] == [800, 800] and offer["sizes"]["cover"] == [2048, 1152]
    assert "default" in offer["schedulers"] and offer["loras"] == []
    states = {row["key"]: row for row in offer["models"]}
    assert states["diffusion"]["state"] == "configured"
    assert (
        states["inpaint"]["state"] == "not configured"
        and states["inpaint"]["setting"] == "ANIMATICA_INPAINT_MODEL"
    )
    assert str(model_folder) not in str(offer)  # the server's paths stay on the server
    assert client.get("/api/v1/images/options").status_code == 401


def test_the_api_takes_several_loras_each_at_its_own_weight(
    make_client: Any, api: Any, model_folder: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "loras"
    folder.mkdir()
    names = [f"style{index}.safetensors" for index in range(6)]
    for name in names:
        (folder / name).write_bytes(b"")
    client = make_client(
        worker=False, diffusion_model=str(model_folder), lora_dir=str(folder), upload_check_processes=0
    )
    alice = api.signup_login(client, "alice")
    offer = client.get("/api/v1/images/options", headers=api.bearer(alice)).json()
    assert offer["loras"] == names and offer["max_loras"] == 5

    def send(loras: list[str]) -> Any:
        data = {"prompt": "a lighthouse at dusk", "loras": loras}
        return client.post("/api/v1/images", headers=api.bearer(alice), data=data)

    sent = send(["style2.safetensors:0.8", "style0.safetensors:-0.5", "style4.safetensors"])
    assert sent.status_code == 202, sent.text
    loras = [["style2.safetensors", 0.8], ["style0.safetensors", -0.5], ["style4.safetensors", 1.0]]
    assert sent.json()["options"]["loras"] == loras
    too_many = send(names)
    assert too_many.status_code == 422 and "At most 5 LoRA files" in too_many.json()["detail"]
    too_strong = send(["style1.safetensors:3"])
    assert too_strong.status_code == 422 and "out of range" in too_strong.json()["detail"]
    assert api.credits(client, alice) == 2  # only the accepted one took a credit


# --- made by the worker ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_picture_made_by_the_worker_downloads_with_a_range(
    settings: Settings, tmp_path: Path, api: Any
) -> None:
    from tests.images.tiny_models import build_tiny_pipeline

    from animatica.jobs.lifecycle import ThreadExecutor
    from animatica.service.app import create_app

    model = build_tiny_pipeline(tmp_path / "tiny", "text2img")
    app_settings = settings.model_copy(
        update={"worker_enabled": True, "diffusion_model": str(model), "upload_check_processes": 0}
    )
    with TestClient(
        create_app(app_settings, executor=ThreadExecutor(app_settings, set_threads=False))
    ) as client:
        alice = api.signup_login(client, "alice")
        sent = client.post(
            "/api/v1/images",
            headers=api.bearer(alice),
            data={"prompt": "a small house", "size": "96x64", "steps": "2", "seed": "3"},
        )
        assert sent.status_code == 202, sent.text
        job = api.wait_for(client, alice, sent.json()["id"], timeout=120)
        assert job["status"] == "succeeded", job["error"]
        whole = client.get(job["result_url"], headers=api.bearer(alice))
        part = client.get(job["result_url"], headers={**api.bearer(alice), "Range": "bytes=0-7"})
        assert part.status_code == 206 and part.content == whole.content[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(io.BytesIO(whole.content)) as picture:
            assert picture.size == (96, 64)
        assert api.credits(client, alice) == 2
