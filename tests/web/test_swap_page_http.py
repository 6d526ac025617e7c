"""The Face swap page over plain HTTP (no browser): signed in only, in the navigation, a form with
the swap engines this server runs, the face choices, a required consent box and the price from
the job kind; the no-script form refuses a post without consent (nothing stored, nothing
charged), and with consent queues a ``face_swap`` job that records who consented and when, then
redirects to the job's page.

The worker is off: these tests are about the page; swaps run in tests/service/test_swaps.py and
in the browser test.
"""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.face.swap_faces import write_actor_inputs

from animatica.settings import Settings

PASSWORD = "correct horse battery"


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        secret_key="swap-page-test-secret-key-long-enough-for-hs256",
        worker_enabled=False,
        upload_check_processes=0,
        log_level="WARNING",
        public_base_url="http://testserver",
    )


def csrf(client: TestClient) -> str:
    if not client.cookies.get("animatica_csrf"):
        client.get("/signin")
    return str(client.cookies.get("animatica_csrf"))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[TestClient]:
    from animatica.service.app import create_app

    with TestClient(create_app(_settings(tmp_path)), follow_redirects=False) as client:
        form = {"username": "alice", "password": PASSWORD, "confirm": PASSWORD, "terms": "accepted"}
        assert client.post("/signup", data={**form, "csrf_token": csrf(client)}).status_code == 303
        yield client


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    photo, clip = write_actor_inputs(tmp_path_factory.mktemp("swap-page"), frames=1)
    return {"photo": photo.read_bytes(), "clip": clip.read_bytes()}


def post(client: TestClient, files: dict[str, bytes], **form: str) -> Any:
    uploads = {
        "source_image": ("someone.png", files["photo"], "image/png"),
        "driving_video": ("actor.mp4", files["clip"], "video/mp4"),
    }
    return client.post("/swap", data={"csrf_token": csrf(client), **form}, files=uploads)


def jobs_of(client: TestClient) -> list[Any]:
    from animatica.db.models import Job

    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.read() as session:
        return list(session.query(Job).all())


def test_the_page_is_for_signed_in_users_and_in_the_navigation(tmp_path: Path, browser: TestClient) -> None:
    from animatica.service.app import create_app

    page = browser.get("/swap")
    assert page.status_code == 200
    assert 'href="/swap" aria-current="page">Face swap</a>' in page.text
    assert 'href="/swap"' in browser.get("/pricing").text
    assert re.search(r'<input type="checkbox" id="consent" name="consent" value="true" required', page.text)
    assert "I have the right to use both faces" in page.text
    assert '<p id="price-line">A face swap costs 1 credit, whatever the video' in page.text
    for mode in ("largest", "all", "index", "reference"):
        assert f'name="which" value="{mode}"' in page.text
    # Only the engines that run here: no ONNX models are configured.
    assert re.findall(r'<option value="([^"]+)"', page.text) == ["faceswap"]
    assert "up to 15 s, 1280 px per side and 30 fps" in page.text

    with TestClient(create_app(_settings(tmp_path)), follow_redirects=False) as anonymous:
        assert anonymous.get("/swap").headers["location"] == "/signin?next=/swap"


def test_without_consent_the_form_is_refused_and_nothing_is_charged(
    browser: TestClient, files: dict[str, bytes]
) -> None:
    refused = post(browser, files)
    assert refused.status_code == 422
    assert "Confirm that you have the right to use both faces" in refused.text
    assert 'id="swap-form"' in refused.text  # the page again, with its error
    assert jobs_of(browser) == []
    assert 'data-credits="3"' in browser.get("/swap").text
    stored = Path(browser.app.state.ctx.settings.home) / "files"  # type: ignore[attr-defined]
    assert not [path for path in stored.rglob("*") if path.is_file()]


def test_with_consent_a_swap_job_is_queued_with_the_consent_on_record(
    browser: TestClient, files: dict[str, bytes]
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    response = post(browser, files, consent="true", which="index", face_number="2")
    assert response.status_code == 303, response.text
    job_id = response.headers["location"].removeprefix("/jobs/")
    assert response.headers["location"] == f"/jobs/{job_id}"
    [job] = jobs_of(browser)
    assert (job.id, job.kind, job.engine) == (job_id, "face_swap", "faceswap")
    assert job.options["which"] == "index:1"  # the second face from the left
    consent = job.options["consent"]
    assert consent["username"] == "alice" and consent["user_id"] == job.user_id
    assert consent["statement"].startswith("I have the right to use both faces")
    at = datetime.fromisoformat(consent["at"])
    assert before <= at <= datetime.now(UTC) + timedelta(seconds=1)
    assert job.options["visible_watermark"] is True
    assert browser.get(f"/jobs/{job_id}").status_code == 200

    bad = post(browser, files, consent="true", which="index", face_number="0")
    assert bad.status_code == 422 and "Faces are numbered from 1" in bad.text
    assert len(jobs_of(browser)) == 1

    # The same photo again, picked from the History instead of uploaded.
    page = browser.get(f"/swap?from={job_id}").text
    assert f'<input type="hidden" name="source_job" id="source_job" value="{job_id}">' in page
    again = browser.post(
        "/swap",
        data={"csrf_token": csrf(browser), "consent": "true", "source_job": job_id},
        files={"driving_video": ("actor.mp4", files["clip"], "video/mp4")},
    )
    assert again.status_code == 303, again.text
    second = next(job for job in jobs_of(browser) if job.id != job_id)
    assert second.source_name == "someone.png" and second.source_key == f"jobs/{second.id}/source.png"
