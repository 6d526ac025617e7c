"""The "Create a picture" page in Chromium, against a server whose Stable Diffusion model is a tiny
random-weight pipeline built in a temporary folder: write a prompt, pick two LoRA styles at weights
of their own, create the picture, follow the job to its picture, "Animate this" opens the Create
page with that picture as its source, and an animation started there uses it; "Use as avatar" puts
it in the header."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need the playwright package (pip install playwright)"
).expect

pytestmark = pytest.mark.slow
PROMPT = "a lighthouse on a cliff at dusk"
LORAS = ("chalk.safetensors", "ink.safetensors", "neon.safetensors")


@pytest.fixture
def picture_server(web: Any, tmp_path: Path) -> Iterator[Any]:
    from tests.images.tiny_models import build_tiny_lora, build_tiny_pipeline

    model = build_tiny_pipeline(tmp_path / "tiny-sd", "text2img")
    for seed, name in enumerate(LORAS, 1):
        build_tiny_lora(tmp_path / "loras" / name, model, seed=seed)
    with web.serve_app(
        tmp_path / "home",
        diffusion_model=str(model),
        lora_dir=str(tmp_path / "loras"),
        worker_mode="thread",
        upload_check_processes=0,
    ) as server:
        yield server


@pytest.fixture
def picture_page(chromium: Any, picture_server: Any, web: Any) -> Iterator[Any]:
    context = chromium.new_context(base_url=picture_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(web.wait_ms)
    yield context.new_page()
    context.close()


def test_create_a_picture_then_animate_it(
    picture_page: Any, picture_server: Any, web: Any, media: Any
) -> None:
    from tests.conftest import load_job

    page = picture_page
    web.sign_up(page, "artist")
    page.get_by_role("link", name="Create a picture").click()
    expect(page.get_by_role("heading", name="Create a picture")).to_be_visible()
    expect(page.locator("#not-configured")).to_contain_text("ANIMATICA_INPAINT_MODEL")

    page.get_by_label("What should the picture show?").fill(PROMPT)
    page.get_by_label("Size", exact=True).select_option("custom")
    page.get_by_label("Other size (width×height)").fill("96x64")
    page.locator("#advanced > summary").click()
    page.get_by_label("Steps", exact=True).fill("2")
    page.get_by_label("Seed", exact=True).fill("4")
    # Two of the three LoRA styles, each at its own weight
    page.get_by_label("neon.safetensors", exact=True).check()
    page.get_by_label("Weight of neon.safetensors").fill("-0.4")
    page.get_by_label("chalk.safetensors", exact=True).check()
    page.get_by_label("Weight of chalk.safetensors").fill("0.75")
    page.get_by_label("Weight of ink.safetensors").fill("2")  # not ticked: not applied
    page.get_by_role("button", name="Create picture").click()

    page.wait_for_url(re.compile(r"/jobs/[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    loras = load_job(picture_server.app.state.ctx.db, job_id).options["loras"]
    assert loras == [["chalk.safetensors", 0.75], ["neon.safetensors", -0.4]]
    expect(page.locator("#result-picture")).to_be_visible()  # the job page reloads once it is done
    page.wait_for_function("document.getElementById('result-picture').naturalWidth === 96")
    web.screenshot(page, "picture-made")

    page.get_by_role("link", name="Animate this").click()
    page.wait_for_url(re.compile(rf"/create\?from={job_id}$"))
    expect(page.locator("#source_job")).to_have_value(job_id)
    expect(page.locator("#source-meta")).to_contain_text(PROMPT)
    page.wait_for_function("document.getElementById('source-preview').naturalWidth > 0")
    page.locator("#driving_video").set_input_files(str(media.driving))
    expect(page.locator("#generate")).to_be_enabled()
    web.screenshot(page, "picture-as-source")
    page.locator("#generate").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f]+$"))
    assert not page.url.endswith(job_id)
    expect(page.locator("#job-title")).to_have_text(PROMPT)  # the animation's source is the picture

    page.goto("/pictures")
    item = page.locator(f'#gallery li[data-job-id="{job_id}"]')
    expect(item.get_by_role("link", name=re.compile("^Animate this"))).to_have_attribute(
        "href", f"/create?from={job_id}"
    )
    item.get_by_role("button", name=re.compile("^Use as avatar")).click()
    expect(page.locator("#flash")).to_contain_text("avatar")
    page.wait_for_function("document.getElementById('avatar').naturalWidth > 0")
    web.screenshot(page, "pictures-gallery")


def test_a_mask_painted_over_the_starting_picture_is_sent_as_a_png(
    picture_page: Any, picture_server: Any, web: Any, media: Any, tmp_path: Path
) -> None:
    from PIL import Image

    page = picture_page
    web.sign_up(page, "painter")
    page.goto("/pictures")
    page.get_by_label("What should the picture show?").fill("a red scarf")
    page.get_by_label("What to do").select_option("inpaint")
    page.locator("#advanced > summary").click()
    page.get_by_label("Steps", exact=True).fill("2")
    page.get_by_label("Starting picture").set_input_files(str(media.face))
    canvas = page.locator("#mask-canvas")
    expect(canvas).to_be_visible()
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    web.screenshot(page, "pictures-mask")
    page.get_by_role("button", name="Create picture").click()

    page.wait_for_url(re.compile(r"/jobs/[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    mask = tmp_path / "mask.png"
    picture_server.app.state.ctx.storage.get_file(f"jobs/{job_id}/driving.png", mask)
    with Image.open(mask) as stored:
        assert stored.size == Image.open(media.face).size
        pixels = stored.convert("L").load()
        middle = stored.height // 2
        assert pixels[stored.width // 4, middle] == 255  # painted
        assert pixels[stored.width - 5, middle] == 0 and pixels[stored.width // 4, 5] == 0  # kept
