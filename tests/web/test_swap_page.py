"""The Face swap page in Chromium against the live server and the real pipeline: sign in, choose a
face photo and a short video, and the form will not go without the consent box ticked; ticked,
the swap runs as a job to the end and its result link serves the swapped MP4, tagged as
generated and stamped with the visible mark."""

import io
import re
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image
from tests.face.swap_faces import actor_frames, astronaut_face, other_person, write_clip

expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need the playwright package (pip install playwright)"
).expect

pytestmark = pytest.mark.slow
JOB_MS = 180_000  # how long the real pipeline may take on a busy machine before the test gives up
SIDE = 128


def _clip(path: Path, frames: int = 6) -> Path:
    """The astronaut, moving a little, ``frames`` frames at 8 fps."""
    return write_clip(path, actor_frames(frames, SIDE))


def _jobs(live_server: Any, username: str) -> list[Any]:
    from animatica.db.models import Job, User

    ctx = live_server.app.state.ctx
    with ctx.db.read() as session:
        return list(session.query(Job).join(User, User.id == Job.user_id).filter(User.username == username))


def test_the_swap_page_needs_consent_then_runs_a_swap_to_its_result(
    page: Any, web: Any, live_server: Any, tmp_path: Path
) -> None:
    photo = tmp_path / "someone.png"
    Image.fromarray(other_person()).save(photo)
    clip = _clip(tmp_path / "actor.mp4")

    web.sign_up(page, "swapper")
    page.goto("/swap")
    expect(page.get_by_role("link", name="Face swap")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="Face swap", level=1)).to_be_visible()
    expect(page.locator("#price-line")).to_have_text(
        "A face swap costs 1 credit, whatever the video's length."
    )
    page.set_input_files("#source_image", str(photo))
    page.set_input_files("#driving_video", str(clip))
    expect(page.locator("#source-meta")).to_contain_text("someone.png")
    expect(page.locator("#driving-meta")).to_contain_text("actor.mp4")
    button = page.locator("#generate")
    expect(button).to_be_enabled()
    # The face number and the reference photo show only for the choice that uses them.
    expect(page.locator("#index-field")).to_be_hidden()
    page.locator("#which-index").check()
    expect(page.locator("#index-field")).to_be_visible()
    page.locator("#which-largest").check()
    expect(page.locator("#index-field")).to_be_hidden()

    # Without consent the browser keeps the form, and the page says why.
    consent = page.locator("#consent")
    expect(consent).not_to_be_checked()
    button.click()
    expect(page.locator("#consent-error")).to_have_text(
        "Tick the box to confirm that you have the right to use both faces."
    )
    expect(page).to_have_url(re.compile(r"/swap$"))
    assert _jobs(live_server, "swapper") == []
    web.screenshot(page, "swap-consent-refused")

    consent.check()
    expect(page.locator("#consent-error")).to_be_hidden()
    button.click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
    # The page shows the job's progress, and once it is over, reloads to show the result.
    link = page.locator("#download")
    expect(link).to_be_visible(timeout=JOB_MS)
    expect(page.locator("#job-status")).to_have_attribute("data-status", "succeeded")
    web.screenshot(page, "swap-done")
    [job] = _jobs(live_server, "swapper")
    assert job.kind == "face_swap" and job.options["consent"]["username"] == "swapper"

    href = link.get_attribute("href")
    assert href == f"/jobs/{job.id}/result"
    response = page.request.get(href)
    assert response.status == 200 and response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(response.body())) as container:
        assert "synthetic media" in container.metadata.get("comment", "")
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (SIDE, SIDE, 3)
    original = astronaut_face(SIDE)
    corner = np.abs(frames[0][-18:, -60:].astype(int) - original[-18:, -60:]).mean()
    assert corner > 20, "the visible mark is in the bottom-right corner"
