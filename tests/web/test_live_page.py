"""The Live page in a real Chromium whose camera is a generated talking-head clip.

Chromium's fake capture device plays a .y4m file in a loop as the webcam, so the page runs exactly
as it does for a user: it opens the camera, creates a session, streams JPEG frames over the live
WebSocket and draws the animated frames that come back. The clip is the demo head (the astronaut
photo turning, nodding and tilting), written here as raw YUV 4:2:0; nothing is downloaded.

Every wait is for a condition (frames counted on the page, pixels changed, a job in the History),
never for an amount of time, so a slow machine makes the test slower, not red.
"""

import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from animatica.demo import demo_driving_frames
from animatica.liveportrait.layout import WEIGHT_FILES
from animatica.settings import Settings

WAIT_MS = 60_000
PASSWORD = "correct horse battery"
FRAMES_WANTED = 8  # animated frames that must arrive before the output is compared
CHANGED = 2.0  # mean absolute difference (0-255) that counts as a different animated picture


def write_talking_head_y4m(path: Path, seconds: float = 2.0, fps: int = 15, size: int = 256) -> Path:
    """The demo talking head as a YUV4MPEG2 clip (BT.601 studio range, 4:2:0), Chromium's fake-camera
    format. The demo's motion loops at ``seconds``, so the camera's endless replay has no jump."""
    if size % 2:
        raise ValueError("4:2:0 needs an even size")
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{size} H{size} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in demo_driving_frames(seconds=seconds, fps=fps, size=size):
            rgb = frame.astype(np.float32) / 255.0
            r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
            y = 16.0 + 65.481 * r + 128.553 * g + 24.966 * b
            u = 128.0 - 37.797 * r - 74.203 * g + 112.0 * b
            v = 128.0 + 112.0 * r - 93.786 * g - 18.214 * b

            def half(plane: np.ndarray) -> np.ndarray:
                return plane.reshape(size // 2, 2, size // 2, 2).mean(axis=(1, 3))

            out.write(b"FRAME\n")
            for plane in (y, half(u), half(v)):
                out.write(np.clip(np.rint(plane), 0, 255).astype(np.uint8).tobytes())
    return path


@pytest.fixture(scope="session")
def camera_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_talking_head_y4m(tmp_path_factory.mktemp("live-camera") / "talking-head.y4m")


@pytest.fixture
def camera_page(browser: Any, live_server: Any, camera_clip: Path, web: Any) -> Iterator[Any]:
    """A page in a Chromium of its own whose webcam (and microphone: a beep) are fakes that need no
    permission prompt; launched from the session browser's Playwright."""
    chromium = browser.browser_type.launch(
        executable_path=str(web.chromium),
        headless=True,
        args=[
            *web.chromium_args,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera_clip}",
        ],
    )
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
        chromium.close()


def start_live(page: Any, web: Any, portrait: Path, *, record: bool = False) -> list[str]:
    """Sign up, open /live, choose the portrait and the landmarks engine, press Start; returns the
    list that collects the page's Content-Security-Policy complaints."""
    from playwright.sync_api import expect

    complaints: list[str] = []
    page.on(
        "console",
        lambda message: (
            complaints.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    web.sign_up(page, f"live-{uuid.uuid4().hex[:10]}")
    page.get_by_role("link", name="Live").click()
    page.wait_for_url("**/live")
    page.get_by_role("button", name="Start").click()  # nothing chosen yet: the page says so
    expect(page.locator("#live-error")).to_contain_text("Choose a portrait")
    page.get_by_label("Upload a portrait").set_input_files(str(portrait))
    expect(page.locator("#live-portrait-preview")).to_be_visible()
    page.get_by_label("Engine").select_option("landmarks")
    expect(page.locator("#live-engine-speed")).to_contain_text("Real time")
    if record:
        page.get_by_role("checkbox", name=re.compile(r"^Record\b")).check()
        page.get_by_role("checkbox", name=re.compile(r"^Include microphone\b")).check()
    page.get_by_role("button", name="Start").click()
    return complaints


def frames_shown(page: Any) -> int:
    return int(page.locator("#live-output").get_attribute("data-frames"))


def wait_for_frames(page: Any, count: int) -> None:
    page.wait_for_function(
        "count => Number(document.getElementById('live-output').dataset.frames) >= count", arg=count
    )


@pytest.mark.slow
def test_live_page_animates_the_portrait_from_the_camera(camera_page: Any, media: Any, web: Any) -> None:
    from playwright.sync_api import expect

    page = camera_page
    complaints = start_live(page, web, media.face)
    expect(page.locator("#live-form")).to_have_attribute("data-state", "live")
    wait_for_frames(page, FRAMES_WANTED)

    # The animated portrait follows the camera's moving head: keep one animated picture, then
    # wait until the canvas shows a clearly different one.
    page.evaluate(
        """() => {
            const canvas = document.getElementById('live-output');
            const context = canvas.getContext('2d');
            window.firstLiveFrame = context.getImageData(0, 0, canvas.width, canvas.height).data.slice();
        }"""
    )
    kept_at = frames_shown(page)
    page.wait_for_function(
        """threshold => {
            const canvas = document.getElementById('live-output');
            const now = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            const first = window.firstLiveFrame;
            let total = 0;
            for (let i = 0; i < now.length; i += 4) {
                total += Math.abs(now[i] - first[i]) + Math.abs(now[i + 1] - first[i + 1])
                    + Math.abs(now[i + 2] - first[i + 2]);
            }
            return total / (3 * now.length / 4) > threshold;
        }""",
        arg=CHANGED,
    )
    assert frames_shown(page) > kept_at

    # The readout shows measured numbers.
    expect(page.locator("#live-fps")).to_have_text(re.compile(r"^\d+\.\d$"))
    expect(page.locator("#live-delay")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(page.locator("#live-dropped")).to_have_text(re.compile(r"^\d+$"))
    assert float(page.locator("#live-fps").inner_text()) > 0
    web.screenshot(page, "live-running")

    page.get_by_role("button", name="Set neutral pose").click()
    expect(page.locator("#live-status")).to_contain_text("neutral")
    shown = frames_shown(page)
    wait_for_frames(page, shown + 2)  # the session goes on from the new neutral pose

    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#live-form")).to_have_attribute("data-state", "ended")
    expect(page.locator("#live-end")).to_be_visible()
    expect(page.locator("#live-recording")).to_be_hidden()
    expect(page.get_by_role("button", name="Start")).to_be_enabled()
    assert complaints == []


@pytest.mark.slow
def test_a_recorded_live_session_lands_in_the_history(camera_page: Any, media: Any, web: Any) -> None:
    from playwright.sync_api import expect

    page = camera_page
    start_live(page, web, media.face, record=True)
    wait_for_frames(page, FRAMES_WANTED)
    page.get_by_role("button", name="Stop").click()
    link = page.get_by_role("link", name="Open the recording")
    expect(link).to_be_visible()
    job_id = str(link.get_attribute("href")).removeprefix("/jobs/")

    page.goto("/history")
    item = page.locator(f'.history-item[data-job-id="{job_id}"]')
    expect(item).to_be_visible()
    page.goto(f"/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_attribute("data-status", "succeeded")
    video = page.request.get(f"/jobs/{job_id}/result")
    assert video.ok
    import av

    with av.open(io.BytesIO(video.body())) as container:
        assert container.streams.video and container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio, "the microphone was recorded, so the video has sound"

    # Its picture is offered on the Live page, and a session starts from it.
    page.goto("/live")
    page.locator(f'input[name="source_job"][value="{job_id}"]').check()
    expect(page.locator("#live-portrait-preview")).to_be_visible()
    page.get_by_role("button", name="Start").click()
    wait_for_frames(page, 2)
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#live-form")).to_have_attribute("data-state", "ended")


# --- over plain HTTP ----------------------------------------------------------------------------


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "secret_key": "live-page-test-secret-key-long-enough-for-hs256",
        "worker_enabled": False,
        "upload_check_processes": 0,
        "log_level": "WARNING",
        "public_base_url": "http://testserver",
    }
    values.update(overrides)
    return Settings(**values)


def _sign_up(client: TestClient, username: str) -> None:
    client.get("/signin")
    token = str(client.cookies.get("animatica_csrf"))
    form = {"username": username, "password": PASSWORD, "confirm": PASSWORD, "terms": "accepted"}
    response = client.post("/signup", data={**form, "csrf_token": token})
    assert response.status_code == 303, response.text


def test_live_page_needs_sign_in_and_offers_only_engines_that_can_run(tmp_path: Path) -> None:
    from animatica.service.app import create_app

    with TestClient(create_app(_settings(tmp_path, fomm_checkpoint="")), follow_redirects=False) as client:
        assert client.get("/live").headers["location"] == "/signin?next=/live"
        _sign_up(client, "dora")
        page = client.get("/live")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'href="/live" aria-current="page"' in page.text
        assert re.findall(r'<option value="(\w+)" data-speed', page.text) == ["landmarks"]
        assert 'name="source_job"' not in page.text  # no History yet
        assert 'id="live-left">3:00<' in page.text and "live-used-up" not in page.text

        # Today's live minutes spent: the page says so and Start is off until midnight UTC.
        from sqlalchemy import select

        from animatica.db.models import User
        from animatica.service import live

        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.db.read() as session:
            user_id = session.scalar(select(User.id).where(User.username == "dora"))
        live.meter(ctx.db, user_id, live.utc_day(live.live_hub(ctx).clock()), 180.0)
        page = client.get("/live").text
        assert "used today's 3 live minutes" in page
        assert re.search(r'<button[^>]*id="live-start"[^>]*disabled', page)

    weights = tmp_path / "weights"
    for name in WEIGHT_FILES:
        (weights / name).parent.mkdir(parents=True, exist_ok=True)
        (weights / name).write_bytes(b"")
    with TestClient(
        create_app(_settings(tmp_path, liveportrait_checkpoint=str(weights))), follow_redirects=False
    ) as client:
        _sign_up(client, "eve")
        page = client.get("/live").text
        assert re.findall(r'<option value="(\w+)" data-speed', page) == ["landmarks", "fomm", "liveportrait"]
        assert "seconds per frame on a CPU" in page


def test_a_live_recording_is_described_as_one_and_canceling_it_promises_no_credit(tmp_path: Path) -> None:
    from sqlalchemy import select
    from tests.conftest import add_job

    from animatica.db.models import User
    from animatica.jobs import state
    from animatica.jobs.live_recording import NAME

    with TestClient(create_app_for(tmp_path), follow_redirects=False) as client:
        _sign_up(client, "fay")
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.db.read() as session:
            user_id = session.scalar(select(User.id).where(User.username == "fay"))
        live = {"kind": NAME, "cost": 0, "driving_name": "live session", "options": {"live": True}}
        done = add_job(ctx.db, user_id, **live, driving_key="jobs/x/driving.mkv")
        assert state.claim(ctx.db, done, "w", "starting") is not None
        assert state.succeed(ctx.db, done, "w", f"jobs/{done}/result.mp4", 1000, frames=90, fps=30.0)
        waiting = add_job(ctx.db, user_id, **live, driving_key="jobs/y/driving.mkv")
        animation = add_job(ctx.db, user_id)

        history = client.get("/history").text
        assert "Live recording, 3 s" in history and "with live session" not in history
        assert "with drive.mp4" in history  # an animation is still told by its driving video
        page = client.get(f"/jobs/{done}").text
        assert "Live recording, 3 s · landmarks engine ·" in page and "motion" not in page
        assert "Live recording · landmarks engine ·" in client.get(f"/jobs/{waiting}").text
        assert "relative motion" in client.get(f"/jobs/{animation}").text

        token = str(client.cookies.get("animatica_csrf"))
        for job_id, words in (
            (waiting, "The animation was canceled."),
            (animation, "your credit was returned"),
        ):
            canceled = client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token})
            assert canceled.status_code == 303
            assert words in client.get(canceled.headers["location"]).text
        assert "credit" not in client.get(f"/jobs/{waiting}").text.split("<main", 1)[1].split("</main>")[0]


def create_app_for(tmp_path: Path) -> Any:
    from animatica.service.app import create_app

    return create_app(_settings(tmp_path))
