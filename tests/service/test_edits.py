"""Portrait edits over the API: a ``portrait_edit`` job per edit, the credit taken like an
animation's, a clear refusal where the server has no LivePortrait weights, an earlier job's picture
edited again without an upload, and (slow) a real edit on name-derived weights with a PNG result."""

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.liveportrait.placeholder import write_placeholder_weights

from animatica.settings import Settings

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture
def placeholder_weights(tmp_path: Path) -> Path:
    """A folder laid out like the public weights (empty files): enough for the server to offer
    editing, not to run it; the worker is off in the tests that use it."""
    return write_placeholder_weights(tmp_path / "liveportrait")


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


def post_edit(
    client: TestClient, tokens: dict[str, str], api: Any, picture: Path | None = None, **form: Any
) -> Any:
    files = {"picture": (picture.name, picture.read_bytes(), "image/png")} if picture else None
    return client.post("/api/v1/edits", headers=api.bearer(tokens), files=files, data=form)


def test_without_weights_an_edit_is_refused_clearly_and_costs_nothing(
    client_for: Any, api: Any, photo: Path
) -> None:
    client = client_for()  # the default: a "liveportrait" folder the home folder does not have
    tokens = api.signup_login(client, "alice")
    response = post_edit(client, tokens, api, photo, yaw="10")
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "This server has no LivePortrait weights installed, so portraits cannot be edited."
    )
    assert api.credits(client, tokens) == 3
    assert client.get("/api/v1/animations", headers=api.bearer(tokens)).json()["total"] == 0

    off = client_for(liveportrait_checkpoint="")
    tokens = api.signup_login(off, "bob")
    response = post_edit(off, tokens, api, photo)
    assert response.status_code == 422
    assert response.json()["detail"] == "Portrait editing is turned off on this server."


def test_numbers_out_of_range_are_refused_naming_the_field(
    client_for: Any, api: Any, photo: Path, placeholder_weights: Path
) -> None:
    client = client_for(liveportrait_checkpoint=str(placeholder_weights))
    tokens = api.signup_login(client, "alice")
    response = post_edit(client, tokens, api, photo, yaw="40")
    assert response.status_code == 422
    assert "yaw must be between -30 and 30 degrees" in response.json()["detail"]
    response = post_edit(client, tokens, api, None, pitch="1")
    assert response.status_code == 422 and "Choose a picture" in response.json()["detail"]
    assert api.credits(client, tokens) == 3


def test_an_edit_is_a_job_and_an_earlier_picture_is_edited_again_without_an_upload(
    client_for: Any, api: Any, photo: Path, placeholder_weights: Path
) -> None:
    client = client_for(liveportrait_checkpoint=str(placeholder_weights))
    tokens = api.signup_login(client, "alice")
    response = post_edit(client, tokens, api, photo, yaw="-12.5", eyes="0.1", crop="false")
    assert response.status_code == 202, response.text
    first = response.json()
    assert response.headers["location"] == f"/api/v1/animations/{first['id']}"
    assert first["kind"] == "portrait_edit" and first["engine"] == "liveportrait"
    assert first["status"] == "queued" and first["source_name"] == "astronaut.png"
    assert first["options"] == {
        "pitch": 0.0,
        "yaw": -12.5,
        "roll": 0.0,
        "eyes": 0.1,
        "lips": None,
        "crop": False,
    }
    assert api.credits(client, tokens) == 2  # reserved like an animation's

    again = post_edit(client, tokens, api, None, from_job=first["id"], lips="0.3").json()
    assert again["kind"] == "portrait_edit" and again["source_name"] == "astronaut.png"
    assert again["options"]["lips"] == 0.3 and again["options"]["crop"] is True
    assert api.credits(client, tokens) == 1
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    stored = [ctx.storage.read_range(f"jobs/{job['id']}/source.png", 0, 10**9) for job in (first, again)]
    assert b"".join(stored[0]) == b"".join(stored[1]), "the same picture, copied in the store"

    bob = api.signup_login(client, "bob")
    assert post_edit(client, bob, api, None, from_job=first["id"]).status_code == 404


@pytest.mark.slow
def test_an_edit_runs_on_named_weights_and_gives_a_png_of_the_whole_photo(
    client_for: Any, api: Any, photo: Path, named_lp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from animatica.liveportrait import editing

    prepared: list[int] = []

    class CountingEditor(editing.PortraitEditor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            prepared.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(editing, "PortraitEditor", CountingEditor)
    client = client_for(  # float32 on the CPU: the networks the other LivePortrait tests loaded
        liveportrait_checkpoint=str(named_lp_dir),
        worker_enabled=True,
        worker_mode="thread",
        torch_threads=2,
        device="cpu",
        precision="fp32",
    )
    tokens = api.signup_login(client, "alice")
    first = post_edit(client, tokens, api, photo, yaw="10").json()
    job = api.wait_for(client, tokens, first["id"], timeout=600)
    assert job["status"] == "succeeded", job
    assert job["frames"] == 1 and job["result_url"] == f"/api/v1/animations/{first['id']}/result"
    result = client.get(job["result_url"], headers=api.bearer(tokens))
    assert result.headers["content-type"] == "image/png"
    assert f'filename="animatica-{first["id"]}.png"' in result.headers["content-disposition"]
    original = np.asarray(Image.open(photo).convert("RGB"))
    edited = np.asarray(Image.open(io.BytesIO(result.content)).convert("RGB"))
    assert edited.shape == original.shape
    changed = np.any(edited != original, axis=2)
    assert changed[100:170, 190:260].mean() > 0.9 and not changed[260:, :].any()

    second = post_edit(client, tokens, api, None, from_job=first["id"], yaw="-10").json()
    job = api.wait_for(client, tokens, second["id"], timeout=600)
    assert job["status"] == "succeeded", job
    again = np.asarray(
        Image.open(io.BytesIO(client.get(job["result_url"], headers=api.bearer(tokens)).content))
    )
    assert np.any(again != edited), "another turn, another picture"
    assert prepared == [1], "the photo was prepared once for both edits"
    assert api.credits(client, tokens) == 1
