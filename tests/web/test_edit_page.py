"""The Edit page over plain HTTP (no browser): offered only where the LivePortrait weights are in
place, the no-script form posts an edit job, the page then shows that job with its sliders and
photo kept for the next Apply, and a finished edit shows its picture and a PNG download.

The worker is off: these tests are about the pages; a real edit runs in tests/service/test_edits.py.
"""

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.liveportrait.placeholder import write_placeholder_weights

from animatica.settings import Settings

PASSWORD = "correct horse battery"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "secret_key": "edit-page-test-secret-key-long-enough-for-hs256",
        "worker_enabled": False,
        "upload_check_processes": 0,
        "log_level": "WARNING",
        "public_base_url": "http://testserver",
        "payment_provider": "local",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A folder laid out like the public weights (empty files): the server offers editing."""
    return write_placeholder_weights(tmp_path / "weights")


@pytest.fixture
def browser(tmp_path: Path, weights: Path) -> Iterator[TestClient]:
    from animatica.service.app import create_app

    app = create_app(_settings(tmp_path, liveportrait_checkpoint=str(weights)))
    with TestClient(app, follow_redirects=False) as client:
        sign_up(client, "alice")
        yield client


def csrf(client: TestClient) -> str:
    if not client.cookies.get("animatica_csrf"):
        client.get("/signin")
    return str(client.cookies.get("animatica_csrf"))


def sign_up(client: TestClient, username: str) -> None:
    form = {"username": username, "password": PASSWORD, "confirm": PASSWORD, "terms": "accepted"}
    response = client.post("/signup", data={**form, "csrf_token": csrf(client)})
    assert response.status_code == 303, response.text


def picture_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def apply(client: TestClient, picture: bytes | None = None, json: bool = False, **form: str) -> Any:
    files = {"picture": ("me.png", picture, "image/png")} if picture is not None else None
    headers = {"Accept": "application/json"} if json else {}
    return client.post(
        "/edit", data={"csrf_token": csrf(client), "keep_crop": "true", **form}, files=files, headers=headers
    )


def test_the_navigation_offers_editing_only_where_the_weights_are(tmp_path: Path, weights: Path) -> None:
    from animatica.service.app import create_app

    with TestClient(create_app(_settings(tmp_path)), follow_redirects=False) as client:
        sign_up(client, "bob")
        assert 'href="/edit"' not in client.get("/create").text
        page = client.get("/edit")
        assert page.status_code == 200
        assert "Portrait editing is not available here" in page.text
        assert re.search(r'<button[^>]*id="apply"[^>]*disabled', page.text)
    with TestClient(
        create_app(_settings(tmp_path, liveportrait_checkpoint=str(weights))), follow_redirects=False
    ) as client:
        sign_up(client, "carol")
        assert 'href="/edit"' in client.get("/create").text
    with TestClient(create_app(_settings(tmp_path)), follow_redirects=False) as client:
        assert client.get("/edit").headers["location"] == "/signin?next=/edit"


def test_apply_queues_an_edit_and_the_page_keeps_the_photo_and_sliders(browser: TestClient) -> None:
    page = browser.get("/edit").text
    for name in ("pitch", "yaw", "roll", "eyes", "lips"):
        assert re.search(rf'<input type="range" id="{name}" name="{name}"', page), name
    assert 'type="file" id="picture" name="picture"' in page

    response = apply(browser, picture_bytes(), yaw="10", crop="true", set_eyes="true", eyes="0.2", lips="0.5")
    assert response.status_code == 303, response.text
    url = response.headers["location"]
    job_id = url.removeprefix("/edit?job=")
    assert url == f"/edit?job={job_id}" and len(job_id) == 32

    shown = browser.get(url).text
    assert f'data-job-id="{job_id}"' in shown and 'data-final="false"' in shown
    assert re.search(rf'name="from_job" value="{job_id}" checked', shown), (
        "the photo is chosen for the next Apply"
    )
    assert re.search(r'id="yaw" name="yaw"[^>]*value="10.0"', shown)
    assert re.search(r'id="set_eyes" name="set_eyes" value="true" checked', shown)
    assert not re.search(r'id="set_lips" name="set_lips" value="true" checked', shown), "the mouth was kept"

    again = apply(browser, json=True, from_job=job_id, pitch="-5")
    assert again.status_code == 202
    body = again.json()
    assert body["status_url"] == f"/jobs/{body['id']}/status" and body["credits"] == 1

    bad = apply(browser, picture_bytes(), roll="25")
    assert bad.status_code == 422 and "roll must be between -20 and 20 degrees" in bad.text
    assert 'id="edit-form"' in bad.text

    # Re-running an edit from the History queues the same edit of the same picture.
    rerun = browser.post(f"/jobs/{job_id}/rerun", data={"csrf_token": csrf(browser)})
    assert rerun.status_code == 303
    new_id = rerun.headers["location"].removeprefix("/jobs/")
    from animatica.jobs import state

    ctx = browser.app.state.ctx  # type: ignore[attr-defined]
    first, copy = state.load(ctx.db, job_id), state.load(ctx.db, new_id)
    assert first is not None and copy is not None and copy.user_id == first.user_id
    assert copy.kind == "portrait_edit" and copy.options == first.options and copy.names["source"] == "me.png"


def test_a_finished_edit_shows_its_picture_and_a_png_download(browser: TestClient) -> None:
    from animatica.jobs import state

    job_id = apply(browser, picture_bytes(), lips="0.3", set_lips="true").headers["location"].split("=")[1]
    ctx = browser.app.state.ctx  # type: ignore[attr-defined]
    claimed = state.claim_next(ctx.db, "test-worker", {})
    assert claimed is not None and claimed.id == job_id and claimed.kind == "portrait_edit"
    result = Path(ctx.settings.home) / "result.png"
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(result)
    key = f"jobs/{job_id}/result.png"
    ctx.storage.put_file(key, result)
    assert state.succeed(ctx.db, job_id, "test-worker", key, result.stat().st_size, 1, 0.0)

    page = browser.get(f"/edit?job={job_id}").text
    assert f'<img class="edit-picture" id="edit-picture" src="/jobs/{job_id}/result"' in page
    assert f'download="animatica-{job_id}.png"' in page
    job_page = browser.get(f"/jobs/{job_id}").text
    assert "portrait edit" in job_page and f'href="/edit?job={job_id}"' in job_page
    assert "<video" not in job_page
    download = browser.get(f"/jobs/{job_id}/result")
    assert download.status_code == 200 and download.headers["content-type"] == "image/png"
    history = browser.get("/history").text
    assert "portrait edit" in history and f'href="/edit?job={job_id}">Edit again' in history
