"""The Edit page in Chromium against a server with LivePortrait weights (derived from the key names,
the weights the parity tests use) and its worker: upload a photo, move the sliders, Apply, and the
page follows the job until it shows the edited picture, which is the photo's size and differs from
it where the face is."""

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need the playwright package (pip install playwright)"
).expect

pytestmark = pytest.mark.slow
EDIT_MS = 600_000  # loading 130 M parameters and one edit on one busy CPU thread, before giving up


@pytest.fixture
def edit_server(web: Any, tmp_path: Path, named_lp_dir: Path) -> Iterator[Any]:
    with web.serve_app(
        tmp_path / "home",
        liveportrait_checkpoint=str(named_lp_dir),
        worker_mode="thread",
        upload_check_processes=0,
        device="cpu",
        precision="fp32",
    ) as server:
        yield server


@pytest.fixture
def edit_page(chromium: Any, edit_server: Any, web: Any) -> Iterator[Any]:
    with web.open_page(chromium, edit_server.url) as page:
        yield page


def test_upload_move_the_sliders_apply_and_get_the_edited_photo(
    edit_page: Any, web: Any, tmp_path: Path
) -> None:
    from skimage import data

    photo = tmp_path / "astronaut.png"
    original = data.astronaut()[:400, 20:500]  # not square: the result keeps the photo's shape
    Image.fromarray(original).save(photo)

    page = edit_page
    web.sign_up(page, "editor")
    page.get_by_role("link", name="Edit", exact=True).click()
    page.wait_for_url(re.compile(r"/edit$"))
    expect(page.get_by_role("heading", name="Edit a portrait", level=1)).to_be_visible()
    expect(page.locator("#edit-unavailable")).to_have_count(0)

    page.set_input_files("#picture", str(photo))
    page.locator("#yaw").fill("15")
    expect(page.locator("#yaw-value")).to_have_text("15")
    # Moving the mouth slider ticks "Change the mouth": the edit then sets its opening.
    expect(page.locator("#set_lips")).not_to_be_checked()
    page.locator("#lips").fill("0.45")
    expect(page.locator("#set_lips")).to_be_checked()
    expect(page.locator("#lips-value")).to_have_text("0.45")
    expect(page.locator("#set_eyes")).not_to_be_checked()
    page.locator("#apply").click()

    page.wait_for_url(re.compile(r"/edit\?job=[0-9a-f]{32}$"))
    job_id = page.url.rsplit("=", 1)[1]
    # The page follows the job and reloads once it is over; only then is the card final.
    card = page.locator(f'#edit-job[data-job-id="{job_id}"]')
    expect(card).to_have_attribute("data-final", "true", timeout=EDIT_MS)
    expect(page.locator("#edit-status")).to_have_attribute("data-status", "succeeded")
    picture = page.locator("#edit-picture")
    expect(picture).to_be_visible()
    page.wait_for_function("document.getElementById('edit-picture').naturalWidth > 0")
    assert picture.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [480, 400]
    # The sliders stay where they were, for the next Apply of the same photo.
    expect(page.locator("#yaw")).to_have_value("15")
    expect(page.locator("#set_lips")).to_be_checked()
    web.screenshot(page, "edit-done")

    response = page.request.get(f"/jobs/{job_id}/result")
    assert response.status == 200 and response.headers["content-type"] == "image/png"
    edited = np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))
    assert edited.shape == original.shape
    changed = np.any(edited != original, axis=2)
    face = changed[100:170, 170:240]  # the astronaut's face in this cut of the photo
    assert face.mean() > 0.9, "the face was re-rendered"
    assert not changed[-60:, :].any(), "the bottom of the photo, far from the face, is untouched"


def test_the_create_page_offers_liveportraits_options_only_for_that_engine(edit_page: Any, web: Any) -> None:
    page = edit_page
    web.sign_up(page, "animator")
    box = page.locator("#liveportrait-options")
    expect(box).to_be_hidden()

    def sent(name: str) -> list[str]:
        return page.evaluate(f"new FormData(document.getElementById('create-form')).getAll('{name}')")

    assert sent("region") == [] and sent("driving_multiplier") == [], "nothing sent for another engine"
    page.locator("#engine").select_option("liveportrait")
    expect(box).to_be_visible()
    page.get_by_label("What moves").select_option("lips")
    page.locator("#driving_multiplier").fill("1.5")
    expect(page.locator("#driving_multiplier-value")).to_have_text("1.5")
    page.get_by_label("Stitching").uncheck()
    assert sent("region") == ["lips"] and sent("driving_multiplier") == ["1.5"]
    assert sent("stitching") == ["false"]
    page.get_by_label("Stitching").check()
    assert sent("stitching")[-1] == "true", "the last value counts"
    web.screenshot(page, "create-liveportrait-options")
    page.locator("#engine").select_option("landmarks")
    expect(box).to_be_hidden()
    assert sent("region") == []
