"""The "Create a picture" page over plain HTTP (no browser, worker off): what the server lacks is
said with the setting to set, the operator's LoRA files are offered (several at once, each at a
weight of its own), the no-script form queues a picture job and the gallery shows it, "Fill from
my video" writes a prompt from the title through the template, a finished picture becomes the
avatar shown in the header, and the Create page takes an earlier picture as its source without an
upload."""

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.conftest import write_mp4
from tests.web.test_pages_http import _settings, csrf, sign_up

from animatica.db.models import Job
from animatica.jobs import state


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    from animatica.service.app import create_app

    model = tmp_path / "sd"
    model.mkdir()
    (model / "model_index.json").write_text("{}")
    loras = tmp_path / "loras"
    loras.mkdir()
    for name in ("watercolor.safetensors", "ink.safetensors", "unused.safetensors"):
        (loras / name).write_bytes(b"")
    settings = _settings(tmp_path, diffusion_model=str(model), lora_dir=str(loras), upload_check_processes=0)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        sign_up(client, "artist")
        yield client


def finish(client: TestClient, job_id: str, picture: bytes) -> None:
    """Stand in for the worker: store the picture as the job's result and end it as succeeded."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    path = Path(ctx.settings.home) / "result.png"
    path.write_bytes(picture)
    ctx.storage.put_file(f"jobs/{job_id}/result.png", path)
    assert state.claim(ctx.db, job_id, "w", "starting") is not None
    assert state.succeed(ctx.db, job_id, "w", f"jobs/{job_id}/result.png", len(picture), 1, 0.0, [])


def png(size: tuple[int, int] = (120, 80)) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def post_picture(client: TestClient, ticked: list[str], weights: list[str], **fields: str) -> Any:
    """The no-script form as the browser posts it: every row of the LoRA picker sends its file and
    its weight, ticked or not, and the ticked files are sent as ``loras``."""
    rows = ["ink.safetensors", "unused.safetensors", "watercolor.safetensors"]
    data = {"csrf_token": csrf(client), "prompt": "a cosy cabin in the woods", **fields}
    return client.post("/pictures", data={**data, "loras": ticked, "lora_file": rows, "lora_weight": weights})


def test_the_page_says_what_is_missing_offers_loras_and_queues_a_picture(client: TestClient) -> None:
    page = client.get("/pictures")
    assert page.status_code == 200
    assert 'href="/pictures" aria-current="page"' in page.text
    missing = page.text[page.text.index('id="not-configured"') :]
    assert (
        "ANIMATICA_INPAINT_MODEL" in missing
        and "ANIMATICA_DIFFUSION_MODEL" not in missing.split("</section>")[0]
    )
    picker = page.text[page.text.index('id="lora-picker"') :].split("</fieldset>")[0]
    for index, name in enumerate(["ink.safetensors", "unused.safetensors", "watercolor.safetensors"], 1):
        assert f'name="loras" value="{name}"' in picker and f'<label for="lora-weight-{index}">' in picker
    assert picker.count('name="lora_weight"') == 3
    assert "Your pictures will appear here." in page.text

    ticked = ["watercolor.safetensors", "ink.safetensors"]
    sent = post_picture(client, ticked, ["-0.35", "2", "0.5"], size="avatar", steps="12", seed="42")
    assert sent.status_code == 303, sent.text
    job_id = sent.headers["location"].rsplit("/", 1)[1]
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.read() as session:
        options = session.get(Job, job_id).options
    assert options["loras"] == [["watercolor.safetensors", 0.5], ["ink.safetensors", -0.35]]
    gallery = client.get("/pictures").text
    assert f'data-job-id="{job_id}"' in gallery and "a cosy cabin in the woods" in gallery
    job = client.get(f"/jobs/{job_id}/status").json()
    assert job["status"] == "queued"

    refused = post_picture(client, [], ["1", "1", "1"], size="custom", custom_size="9x9")
    assert refused.status_code == 422 and "out of range" in refused.text
    too_strong = post_picture(client, ["ink.safetensors"], ["2.5", "1", "1"])
    assert too_strong.status_code == 422 and "out of range" in too_strong.text
    uneven = post_picture(client, ["ink.safetensors"], ["1", "1"])
    assert uneven.status_code == 422 and "needs one weight" in uneven.text


def test_fill_from_my_video_writes_a_prompt_from_its_title(client: TestClient, tmp_path: Path) -> None:
    video = write_mp4(tmp_path / "clip.mp4")
    answer = client.post(
        "/pictures/prompt",
        headers={"Accept": "application/json"},
        data={"csrf_token": csrf(client), "title": "Baking sourdough bread at home", "kind": "thumbnail"},
        files={"video": ("clip.mp4", video.read_bytes(), "video/mp4")},
    )
    assert answer.status_code == 200, answer.text
    draft = answer.json()
    assert "Baking sourdough bread at home" in draft["prompt"] and draft["source"] == "template"
    no_script = client.post("/pictures/prompt", data={"csrf_token": csrf(client), "title": "Morning run"})
    assert no_script.status_code == 200
    assert re.search(r'<textarea id="prompt"[^>]*>[^<]*Morning run', no_script.text)
    nothing = client.post(
        "/pictures/prompt", headers={"Accept": "application/json"}, data={"csrf_token": csrf(client)}
    )
    assert nothing.status_code == 422


def test_a_finished_picture_is_a_source_to_animate_and_an_avatar(client: TestClient, tmp_path: Path) -> None:
    sent = client.post(
        "/pictures",
        headers={"Accept": "application/json"},
        data={"csrf_token": csrf(client), "prompt": "a smiling robot", "size": "portrait"},
    )
    assert sent.status_code == 202, sent.text
    job_id = sent.json()["id"]
    finish(client, job_id, png())

    job_page = client.get(f"/jobs/{job_id}").text
    assert f'href="/create?from={job_id}"' in job_page and 'id="result-picture"' in job_page
    assert "Delete this picture" in job_page and "this animation" not in job_page
    create = client.get(f"/create?from={job_id}").text
    assert f'name="source_job" id="source_job" value="{job_id}"' in create
    thumbnail = client.get(f"/jobs/{job_id}/thumbnail")
    with Image.open(io.BytesIO(thumbnail.content)) as picture:
        assert picture.size == (120, 80)  # the made picture, not a missing source
    assert client.get("/create?from=not-a-job").status_code == 404

    animation = client.post(
        "/create",
        headers={"Accept": "application/json"},
        data={"csrf_token": csrf(client), "source_job": job_id, "engine": "landmarks"},
        files={"driving_video": ("talk.mp4", write_mp4(tmp_path / "talk.mp4").read_bytes(), "video/mp4")},
    )
    assert animation.status_code == 202, animation.text
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.read() as session:
        made = session.get(Job, animation.json()["id"])
        assert made is not None and made.source_name == "a smiling robot"
        source_key = made.source_key
    copied = tmp_path / "copied.png"
    ctx.storage.get_file(source_key, copied)
    assert copied.read_bytes() == png()

    assert 'id="avatar"' not in client.get("/pictures").text
    chosen = client.post(f"/pictures/{job_id}/avatar", data={"csrf_token": csrf(client)})
    assert chosen.status_code == 303
    header = client.get("/pictures").text
    found = re.search(r'<img class="avatar" id="avatar" src="(/account/avatar\?v=\d+)"', header)
    assert found
    avatar = client.get(found.group(1))
    with Image.open(io.BytesIO(avatar.content)) as picture:
        assert picture.size == (80, 80)  # the picture's centred square
