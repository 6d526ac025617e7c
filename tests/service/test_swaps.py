"""Face swaps over the API: ``POST /api/v1/swaps`` queues a ``face_swap`` job that runs through the
job core like an animation (202 and a Location, one credit reserved, the result an MP4 fetched
with Range, invisible to other users), a photo without a face fails the job with that reason and
returns the credit, and bad options are refused before anything is charged.

The clips are four frames of the astronaut at 128 px; the face photo is an LFW face (another
person), so the swapped face region differs from the video's while the background does not.
"""

import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.face.swap_faces import (
    astronaut_face,
    other_person,
    side_by_side,
    write_actor_inputs,
    write_clip,
)

from animatica.settings import Settings

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SIDE = 128
FACE = (slice(33, 73), slice(47, 83))  # rows, columns of the astronaut's face in a frame


def _decode(data: bytes | Path) -> list[np.ndarray]:
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with av.open(source) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("swap-media")
    # the head moves a little, so frames are not all the same
    photo, clip = write_actor_inputs(folder, 4, SIDE)
    blank = folder / "blank.png"
    Image.fromarray(np.full((96, 96, 3), 200, np.uint8)).save(blank)
    pair = folder / "two-people.png"
    Image.fromarray(side_by_side(astronaut_face(200), other_person(side=120, canvas=200))).save(pair)
    empty = folder / "empty.mp4"
    # a wall, no face anywhere
    write_clip(empty, (np.full((SIDE, SIDE, 3), 90 + 10 * shade, np.uint8) for shade in range(4)))
    fast = folder / "fast.mp4"
    with av.open(str(fast), "w") as container:  # the actor at 50 fps: over the free plan's 30
        stream = container.add_stream("libx264", rate=Fraction(50))
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        for packet in stream.encode(av.VideoFrame.from_ndarray(astronaut_face(SIDE), format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return {"photo": photo, "blank": blank, "pair": pair, "clip": clip, "empty": empty, "fast": fast}


@pytest.fixture
def client_for(settings: Settings) -> Iterator[Any]:
    from animatica.service.app import create_app

    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        values = {"worker_enabled": False, "upload_check_processes": 0, **overrides}
        client = TestClient(create_app(settings.model_copy(update=values)))
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


def post_swap(
    client: TestClient, tokens: dict[str, str], api: Any, face: Path, video: Path, **form: Any
) -> Any:
    files: dict[str, Any] = {
        "face": (face.name, face.read_bytes(), "image/png"),
        "video": (video.name, video.read_bytes(), "video/mp4"),
    }
    reference = form.pop("reference", None)
    if reference is not None:
        files["reference"] = (reference.name, reference.read_bytes(), "image/png")
    data = {"consent": "true", **form}  # consent=None: the field left out
    data = {key: value for key, value in data.items() if value is not None}
    return client.post("/api/v1/swaps", headers=api.bearer(tokens), files=files, data=data)


@pytest.mark.slow
def test_a_swap_runs_as_a_job_and_puts_the_photos_face_into_the_video(
    client_for: Any, api: Any, media: dict[str, Path]
) -> None:
    client = client_for(worker_enabled=True, worker_mode="thread")
    tokens = api.signup_login(client, "alice")
    response = post_swap(client, tokens, api, media["photo"], media["clip"])
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/v1/animations/{job['id']}"
    assert job["kind"] == "face_swap" and job["engine"] == "faceswap"
    assert job["source_name"] == "someone.png" and job["driving_name"] == "actor.mp4"
    assert job["options"]["which"] == "largest" and job["options"]["fps"] == 8.0
    assert api.credits(client, tokens) == 2  # one credit per job, reserved with the row

    done = api.wait_for(client, tokens, job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    assert done["frames"] == 4 and done["result_url"] == f"/api/v1/animations/{job['id']}/result"
    assert api.credits(client, tokens) == 2  # consumed
    result = client.get(done["result_url"], headers=api.bearer(tokens))
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    part = client.get(done["result_url"], headers={**api.bearer(tokens), "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == result.content[:100]

    before, after = _decode(media["clip"]), _decode(result.content)
    assert len(after) == len(before) == 4
    for original, swapped in zip(before, after, strict=True):
        assert swapped.shape == original.shape == (SIDE, SIDE, 3)
        face = np.abs(swapped[FACE].astype(int) - original[FACE]).mean()
        corner = np.abs(swapped[:12, :12].astype(int) - original[:12, :12]).mean()  # coding noise
        assert face > 4 * corner and face > 4, (face, corner)

    bob = api.signup_login(client, "bob")
    assert client.get(f"/api/v1/animations/{job['id']}", headers=api.bearer(bob)).status_code == 404
    assert client.get(done["result_url"], headers=api.bearer(bob)).status_code == 404
    history = client.get("/api/v1/animations", headers=api.bearer(bob)).json()
    assert history["total"] == 0


@pytest.mark.parametrize(
    ("photo", "detail"),
    [
        (
            "blank",
            "No face was found in the face photo blank.png: use a photo with one clearly visible face.",
        ),
        (
            "pair",
            "The face photo two-people.png shows 2 faces: use a photo of one person, or crop it to the "
            "face you mean.",
        ),
    ],
)
def test_a_photo_without_exactly_one_face_is_refused_at_submission_and_costs_nothing(
    client_for: Any, api: Any, media: dict[str, Path], photo: str, detail: str
) -> None:
    client = client_for()
    tokens = api.signup_login(client, "alice")
    response = post_swap(client, tokens, api, media[photo], media["clip"])
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == detail
    assert api.credits(client, tokens) == 3
    assert client.get("/api/v1/animations", headers=api.bearer(tokens)).json()["total"] == 0


def stored_files(settings: Settings) -> list[str]:
    from urllib.parse import urlparse

    folder = Path(urlparse(settings.storage_url).path)
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_without_consent_nothing_is_stored_or_charged(
    client_for: Any, api: Any, media: dict[str, Path], settings: Settings
) -> None:
    client = client_for()
    tokens = api.signup_login(client, "alice")
    for consent in (None, "false"):
        response = post_swap(client, tokens, api, media["photo"], media["clip"], consent=consent)
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == (
            "Confirm that you have the right to use both faces (the photo's and the video's) before "
            "swapping: send consent=true."
        )
    assert api.credits(client, tokens) == 3
    assert client.get("/api/v1/animations", headers=api.bearer(tokens)).json()["total"] == 0
    assert stored_files(settings) == []


@pytest.mark.slow
def test_a_video_without_any_face_fails_the_job_cleanly_and_returns_the_credit(
    client_for: Any, api: Any, media: dict[str, Path], settings: Settings
) -> None:
    client = client_for(worker_enabled=True, worker_mode="thread")
    tokens = api.signup_login(client, "alice")
    response = post_swap(client, tokens, api, media["photo"], media["empty"])
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert api.credits(client, tokens) == 2
    done = api.wait_for(client, tokens, job_id, timeout=300)
    assert done["status"] == "failed", done
    assert done["error"].startswith("No face was found anywhere in the video, so there is nothing to swap")
    assert "/" not in done["error"]  # no server path
    assert api.credits(client, tokens) == 3
    assert stored_files(settings) == [f"jobs/{job_id}/driving.mp4", f"jobs/{job_id}/source.png"]


def test_bad_choices_are_refused_before_anything_is_charged(
    client_for: Any, api: Any, media: dict[str, Path]
) -> None:
    client = client_for()
    tokens = api.signup_login(client, "alice")
    response = post_swap(client, tokens, api, media["photo"], media["clip"], which="tallest")
    assert response.status_code == 422
    assert "Unknown face choice 'tallest'" in response.json()["detail"]
    response = post_swap(client, tokens, api, media["photo"], media["clip"], which="reference")
    assert response.status_code == 422 and "needs a reference photo" in response.json()["detail"]
    response = post_swap(client, tokens, api, media["photo"], media["clip"], engine="faceswap-onnx")
    assert response.status_code == 422  # only the engines this server can run
    assert response.json()["detail"] == (
        "The faceswap-onnx engine has no models set up on this server; choose another engine."
    )
    response = post_swap(client, tokens, api, media["photo"], media["clip"], engine="landmarks")
    assert response.status_code == 422 and "animates a photo" in response.json()["detail"]
    response = post_swap(client, tokens, api, media["photo"], media["clip"], blend="paste")
    assert response.status_code == 422 and "Unknown blend 'paste'" in response.json()["detail"]
    response = post_swap(
        client, tokens, api, media["photo"], media["clip"], which="reference", reference=media["blank"]
    )
    assert response.status_code == 422 and "No face was found" in response.json()["detail"]
    response = post_swap(client, tokens, api, media["photo"], media["fast"])  # the plan's frame rate
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "The video (fast.mp4) runs at 50 fps; your plan allows up to 30 fps, export it at 30 fps or less "
        "and upload it again."
    )
    response = post_swap(client, tokens, api, media["clip"], media["clip"])  # a video as the photo
    assert response.status_code == 415
    assert response.json()["detail"] == (
        "The face photo (actor.mp4) is not a JPG, PNG or WebP picture; upload one of those."
    )
    assert api.credits(client, tokens) == 3
    assert client.get("/api/v1/animations", headers=api.bearer(tokens)).json()["total"] == 0


def test_a_reference_photo_becomes_an_identity_at_submission(
    client_for: Any, api: Any, media: dict[str, Path], tmp_path: Path
) -> None:
    reference = tmp_path / "actor.png"
    Image.fromarray(astronaut_face(200)).save(reference)
    client = client_for()
    tokens = api.signup_login(client, "alice")
    response = post_swap(
        client,
        tokens,
        api,
        media["photo"],
        media["clip"],
        which="reference",
        reference=reference,
        keep_eyes="false",
        blend="feather",
    )
    assert response.status_code == 202, response.text
    options = response.json()["options"]
    assert options["which"] == "reference" and options["blend"] == "feather"
    assert options["keep_eyes"] is False and options["keep_mouth"] is True
    assert len(options["reference"]) == 128 and options["max_frames"] >= 4
    assert api.credits(client, tokens) == 2
    # The consent is on record with the job, and whether its frames get the visible mark.
    consent = options["consent"]
    assert consent["username"] == "alice" and isinstance(consent["user_id"], int)
    assert consent["statement"].startswith("I have the right to use both faces")
    assert consent["at"].endswith("+00:00") and options["visible_watermark"] is True


def test_a_swap_runs_again_as_a_new_swap_under_the_current_plan(
    settings: Settings, executor: Any, media: dict[str, Path]
) -> None:
    from fastapi import UploadFile
    from sqlalchemy import update

    from animatica.db import ledger
    from animatica.db.models import User
    from animatica.service.accounts import signup
    from animatica.service.animations import load_job
    from animatica.service.context import build_context
    from animatica.service.deps import CurrentUser
    from animatica.service.submit import rerun
    from animatica.service.swaps import SwapForm, submit_swap

    ctx = build_context(settings.model_copy(update={"upload_check_processes": 0}), executor)
    try:
        alice = CurrentUser(signup(ctx.db, "alice", "password-long-enough", 3), "alice", "free", "")
        with media["photo"].open("rb") as face, media["clip"].open("rb") as video:
            first = submit_swap(
                ctx,
                alice,
                UploadFile(face, filename="someone.png"),
                UploadFile(video, filename="actor.mp4"),
                SwapForm(which="index:0", keep_mouth=False, consent=True),
            )
        with ctx.db.transaction() as session:  # bought a pack since: a longer limit
            session.execute(update(User).where(User.id == alice.id).values(plan_id="pro"))
        second = rerun(ctx, CurrentUser(alice.id, "alice", "pro", ""), first)
        old, new = load_job(ctx, alice.id, first), load_job(ctx, alice.id, second)
        assert (new.kind, new.engine, new.status) == ("face_swap", "faceswap", "queued")
        assert new.options == {**old.options, "max_frames": 300 * 8 + 1}
        assert old.options["max_frames"] == 15 * 8 + 1 and new.options["which"] == "index:0"
        assert (new.source_name, new.driving_name) == ("someone.png", "actor.mp4")
        assert new.driving_key == f"jobs/{second}/driving.mp4"
        with ctx.db.read() as session:
            assert ledger.balance(session, alice.id) == 1
    finally:
        ctx.db.dispose()


def test_pricing_says_what_a_swap_costs(client_for: Any) -> None:
    page = client_for().get("/pricing")
    assert page.status_code == 200
    assert "A face swap (the face of one photo put into a video) costs one credit per job" in page.text
