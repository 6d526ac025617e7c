"""What the pages refuse, in Chromium: wrong credentials and sign-up mistakes, wrong file types,
files over the limit, and animating with no credit left. Each client-side check is followed by
the same request sent past the page's script, to show the server refuses it too."""

import re
from typing import Any

import pytest

from animatica.service import accounts

expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need the playwright package (pip install playwright)"
).expect
pytestmark = pytest.mark.slow


def _bypass_page(page: Any, image: Any, video: Any) -> Any:
    """Post the Create form as a script that ignores the page's checks would."""
    token = page.locator("#create-form input[name=csrf_token]").input_value()
    return page.request.post(
        "/create",
        headers={"Accept": "application/json", "X-CSRF-Token": token},
        multipart={
            "source_image": {"name": image.name, "mimeType": "image/png", "buffer": image.read_bytes()},
            "driving_video": {"name": video.name, "mimeType": "video/mp4", "buffer": video.read_bytes()},
            "engine": "landmarks",
            "motion": "relative",
        },
    )


def _stored_jobs(live_server: Any) -> list[str]:
    root = live_server.settings.home / "files" / "jobs"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_sign_up_and_sign_in_errors(page: Any, web: Any) -> None:
    page.goto("/signup")
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password", exact=True).fill("first-password")
    page.get_by_label("Confirm password").fill("other-password")
    page.get_by_label("Confirm password").blur()
    expect(page.locator("#confirm-error")).to_have_text("Passwords don't match")
    # Past the script the server says the same, and keeps the typed username. The checks below
    # would also hold on the page before the post, so they wait for the server's page to load.
    with page.expect_event("load"):
        page.locator("#auth-form").evaluate("form => form.submit()")
    expect(page.locator("#confirm-error")).to_have_text("Passwords don't match")
    expect(page.get_by_label("Username")).to_have_value("grace")
    expect(page.locator("#terms-error")).to_contain_text("Accept the Terms of Service")
    web.screenshot(page, "11-sign-up-errors")

    web.sign_up(page, "grace")
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#flash")).to_contain_text("signed out")  # before leaving: the post must land
    page.goto("/signup")
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password", exact=True).fill(web.password)
    page.get_by_label("Confirm password").fill(web.password)
    page.get_by_label("I have read and accept").check()
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#username-error")).to_have_text("Username already exists")

    page.goto("/signin?next=/history")
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#form-error")).to_have_text("Invalid credentials")
    web.screenshot(page, "12-sign-in-error")
    page.get_by_label("Password").fill(web.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/history$"))


def test_wrong_file_types_are_refused(page: Any, media: Any, web: Any, live_server: Any) -> None:
    web.sign_up(page, "linus")
    before = web.credit_count(page)
    generate = page.get_by_role("button", name="Generate")

    # A text file as the picture: refused in the page, nothing uploaded.
    page.set_input_files("#source_image", str(media.text))
    expect(page.locator("#source-error")).to_contain_text("is not a JPG, PNG or WebP picture")
    expect(page.locator("#source_image")).to_have_attribute("aria-invalid", "true")
    page.set_input_files("#driving_video", str(media.driving))
    expect(page.locator("#driving-meta")).to_contain_text("talking.mp4")
    expect(generate).to_be_disabled()
    web.screenshot(page, "13-create-wrong-type")

    # An HTML page named .jpg passes the browser's look at the name; the server reads the content.
    page.set_input_files("#source_image", str(media.fake_jpeg))
    expect(page.locator("#source-error")).to_contain_text("could not be read as a picture")
    response = _bypass_page(page, media.fake_jpeg, media.driving)
    assert response.status == 415
    assert "contains HTML or script" in response.json()["detail"]

    # The picture and the video swapped: the server says which file is wrong.
    response = _bypass_page(page, media.driving, media.face)
    assert response.status == 415
    assert "source image" in response.json()["detail"]
    page.reload()
    assert web.credit_count(page) == before
    page.goto("/history")
    expect(page.get_by_text("No animations yet")).to_be_visible()


def test_too_large_files_are_refused(page: Any, media: Any, web: Any, live_server: Any) -> None:
    web.sign_up(page, "margaret")
    before = web.credit_count(page)
    jobs_before = _stored_jobs(live_server)
    page.set_input_files("#source_image", str(media.face))
    page.set_input_files("#driving_video", str(media.huge_video))
    expect(page.locator("#driving-error")).to_contain_text("the limit is 3.0 MB")
    expect(page.get_by_role("button", name="Generate")).to_be_disabled()
    web.screenshot(page, "14-create-too-large")

    response = _bypass_page(page, media.face, media.huge_video)
    assert response.status == 413
    assert "larger than 3 MB" in response.json()["detail"]
    assert _stored_jobs(live_server) == jobs_before
    page.reload()
    assert web.credit_count(page) == before


def test_no_credits_blocks_generate_and_points_to_pricing(
    page: Any, media: Any, web: Any, live_server: Any
) -> None:
    web.sign_up(page, "barbara")
    accounts.grant(live_server.app.state.ctx.db, "barbara", -web.credit_count(page), "test: spend all")
    page.reload()
    assert web.credit_count(page) == 0
    expect(page.locator("#no-credits")).to_be_visible()
    page.set_input_files("#source_image", str(media.face))
    page.set_input_files("#driving_video", str(media.driving))
    expect(page.locator("#driving-meta")).to_contain_text("talking.mp4")
    expect(page.get_by_role("button", name="Generate")).to_be_disabled()
    expect(page.locator("#generate-hint")).to_contain_text("No credits left")
    web.screenshot(page, "15-create-no-credits")

    response = _bypass_page(page, media.face, media.driving)
    assert response.status == 402
    assert "no credits left" in response.json()["detail"]

    page.locator("#no-credits").get_by_role("link", name=re.compile("Pricing")).click()
    expect(page).to_have_url(re.compile(r"/pricing$"))
    expect(page.locator("#pricing-balance")).to_have_text("0")


def test_phone_photos_and_gif_clips_are_taken_not_refused(
    page: Any, media: Any, web: Any, live_server: Any, worker_gate: Any, tmp_path: Any
) -> None:
    """A photo larger than the plan's side is scaled down (the page and the job say so), a GIF is a
    driving clip, and a picture with more pixels than the plan decodes is still refused early."""
    import av
    import numpy as np
    from PIL import Image

    photo = tmp_path / "IMG_2041.jpg"
    Image.open(media.face).convert("RGB").resize((2000, 1500)).save(photo, quality=85)
    gif = tmp_path / "wave.gif"
    with av.open(str(gif), "w", format="gif") as container:
        stream = container.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 128, "rgb8"
        face = np.asarray(Image.open(media.face).convert("RGB").resize((160, 160)))
        for shift in range(10):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(face[shift : shift + 128, 16:144]), "rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    poster = tmp_path / "poster.png"
    Image.new("RGB", (6000, 5000), "white").save(poster)  # 30 megapixels: over the free plan's 25

    web.sign_up(page, "hedy")
    before = web.credit_count(page)
    page.set_input_files("#source_image", str(poster))
    expect(page.locator("#source-error")).to_contain_text("your plan accepts pictures of up to 25 megapixels")
    page.set_input_files("#source_image", str(photo))
    expect(page.locator("#source-meta")).to_contain_text("2000×1500, will be scaled down to 1280×960")
    page.set_input_files("#driving_video", str(gif))
    expect(page.locator("#driving-meta")).to_contain_text(re.compile(r"wave\.gif · .* · GIF$"))
    expect(page.locator("#driving-preview")).to_have_attribute("poster", re.compile("^blob:"))
    expect(page.locator("#driving-error")).to_be_hidden()
    web.screenshot(page, "16-create-phone-photo-and-gif")

    worker_gate.hold()  # the job's page is what matters here, not its animation
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
    expect(page.locator(".job-note")).to_have_text(
        "The source picture was 2000x1500; it was scaled down to 1280x960, the largest your plan "
        "animates (1280 px per side)."
    )
    web.expect_credits(page, before - 1)
    web.screenshot(page, "17-job-with-scaled-picture")
    page.get_by_role("button", name="Cancel").click()  # leave no job behind for the shared worker
    expect(page.locator("#job-status")).to_have_attribute("data-status", "canceled")
    web.expect_credits(page, before)
    # Past the page's script the server refuses the oversized picture too, before decoding it.
    page.goto("/create")
    response = _bypass_page(page, poster, media.driving)
    assert response.status == 422
    assert "30.0 megapixels" in response.json()["detail"]
