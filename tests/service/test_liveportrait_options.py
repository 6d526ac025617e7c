"""The liveportrait engine's motion options (animated region, stitching, driving multiplier, eye and
lip retargeting) as
options of a service job: checked once with a clear 422, stored with the job, offered on the Create
page only for that engine, and passed to the engine when the job runs. A job runs on them in
tests/service/test_liveportrait_service.py."""

import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.liveportrait.placeholder import write_placeholder_weights

from animatica.jobs.engine_choice import EngineWeights
from animatica.jobs.options import InvalidOptions, JobOptions
from animatica.settings import Settings

MACHINE = {"device": "cpu", "precision": "fp32", "batch_size": 1}
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def placeholder_weights(tmp_path: Path) -> Path:
    """A folder laid out like the public weights (empty files): enough for the server to offer the
    engine and queue its jobs; the worker is off."""
    return write_placeholder_weights(tmp_path / "liveportrait")


@pytest.fixture
def client(settings: Settings, placeholder_weights: Path) -> Iterator[TestClient]:
    from animatica.service.app import create_app

    settings = settings.model_copy(
        update={"upload_check_processes": 0, "liveportrait_checkpoint": str(placeholder_weights)}
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_values_are_checked_with_one_clear_refusal_each() -> None:
    from animatica.service.errors import status_for

    options = JobOptions(engine="liveportrait", region="lip", stitching=False, driving_multiplier=0.5)
    assert (options.region, options.stitching, options.driving_multiplier) == ("lips", False, 0.5)
    cases = {
        "Unknown animation region 'nose'; use one of all, exp, pose, lips, eyes.": {"region": "nose"},
        "The driving multiplier must be between 0 and 3, not 3.5.": {"driving_multiplier": 3.5},
        "The driving multiplier must be between 0 and 3, not -1.0.": {"driving_multiplier": -1},
        "region, stitching: only the liveportrait engine has these options, not the landmarks engine.": {
            "engine": "landmarks",
            "region": "exp",
            "stitching": False,
        },
        "driving_multiplier: only the liveportrait engine has this option, not the fomm engine.": {
            "engine": "fomm",
            "driving_multiplier": 2,
        },
    }
    for message, values in cases.items():
        with pytest.raises(InvalidOptions) as refused:
            JobOptions(**values)
        assert str(refused.value) == message
        assert status_for(refused.value) == 422
    with pytest.raises(InvalidOptions, match="Invalid driving_multiplier"):
        JobOptions(driving_multiplier="lots")  # type: ignore[arg-type]
    # `auto` may still become liveportrait; once the server resolves it to another engine, refused.
    chosen_later = JobOptions(region="pose")
    with pytest.raises(InvalidOptions, match="not the landmarks engine"):
        chosen_later.but(engine="landmarks")
    assert chosen_later.but(engine="liveportrait").region == "pose"
    # The defaults belong to every engine.
    assert JobOptions(engine="landmarks", region="all", stitching=True, driving_multiplier=1).region == "all"


def test_the_options_are_stored_and_reach_the_engine() -> None:
    from animatica.engines.liveportrait import LivePortraitEngine
    from animatica.pipeline import AnimationRequest, _engine_options

    options = JobOptions(
        engine="liveportrait", region="eyes", stitching=False, driving_multiplier=1.5, lip_retargeting=True
    )
    row = options.to_row()
    assert (row["region"], row["stitching"], row["driving_multiplier"]) == ("eyes", False, 1.5)
    assert JobOptions.from_row("liveportrait", row) == options
    older = JobOptions.from_row("liveportrait", {"relative": False})  # a row from before these options
    assert (older.region, older.stitching, older.driving_multiplier) == ("all", True, 1.0)
    assert (older.eye_retargeting, older.lip_retargeting) == (False, False)

    weights = EngineWeights(Path("/operator/liveportrait"), None, "liveportrait")
    fields = options.request_fields(Path("s.png"), Path("d.mp4"), "out/", weights=weights, **MACHINE)
    assert fields["engine_options"] == {
        "region": "eyes",
        "stitching": False,
        "driving_multiplier": 1.5,
        "eye_retargeting": False,
        "lip_retargeting": True,
    }
    engine_kwargs = _engine_options(AnimationRequest(**fields), "liveportrait")
    assert engine_kwargs["region"] == "eyes" and engine_kwargs["stitching"] is False
    assert engine_kwargs["lip_retargeting"] is True and engine_kwargs["eye_retargeting"] is False
    assert set(engine_kwargs) <= set(inspect.signature(LivePortraitEngine.load).parameters)
    landmarks = JobOptions(engine="landmarks").request_fields(
        Path("s"), Path("d"), Path("o"), weights=None, **MACHINE
    )
    assert "engine_options" not in landmarks


@SQLITE
def test_the_api_takes_them_and_refuses_bad_values_before_charging(
    client: TestClient, api: Any, test_image: Path, test_video: Path
) -> None:
    tokens = api.signup_login(client, "alice")
    refusals = {
        "Unknown animation region 'chin'": {"engine": "liveportrait", "region": "chin"},
        "between 0 and 3, not 9.0": {"engine": "liveportrait", "driving_multiplier": "9"},
        "only the liveportrait engine has this option, not the landmarks engine": {
            "engine": "landmarks",
            "stitching": "false",
        },
        "eye_retargeting: only the liveportrait engine has this option, not the fomm engine": {
            "engine": "fomm",
            "eye_retargeting": "true",
        },
    }
    for message, form in refusals.items():
        response = api.submit(client, tokens, test_image, test_video, **form)
        assert response.status_code == 422, response.text
        assert message in response.json()["detail"]
    assert api.credits(client, tokens) == 3
    assert client.get("/api/v1/animations", headers=api.bearer(tokens)).json()["total"] == 0

    response = api.submit(
        client,
        tokens,
        test_image,
        test_video,
        engine="liveportrait",
        region="exp",
        stitching="false",
        driving_multiplier="0.75",
        eye_retargeting="true",
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["engine"] == "liveportrait"
    options = job["options"]
    assert (options["region"], options["stitching"], options["driving_multiplier"]) == ("exp", False, 0.75)
    assert (options["eye_retargeting"], options["lip_retargeting"]) == (True, False)
    plain = api.submit(client, tokens, test_image, test_video, engine="liveportrait").json()["options"]
    assert (plain["region"], plain["stitching"], plain["driving_multiplier"]) == ("all", True, 1.0)


def _csrf(client: TestClient) -> str:
    if not client.cookies.get("animatica_csrf"):
        client.get("/signin")
    return str(client.cookies.get("animatica_csrf"))


@SQLITE
def test_the_create_page_offers_them_for_liveportrait_only(
    client: TestClient, test_image: Path, test_video: Path
) -> None:
    password = "correct horse battery"
    form = {"username": "carol", "password": password, "confirm": password, "terms": "accepted"}
    signed_up = client.post("/signup", data={**form, "csrf_token": _csrf(client)}, follow_redirects=False)
    assert signed_up.status_code == 303
    page = client.get("/create").text
    fieldset = re.search(r'<fieldset class="field" id="liveportrait-options"([^>]*)>', page)
    assert fieldset is not None and "hidden disabled" in fieldset.group(1), "shown once chosen"
    for name in ("region", "stitching", "driving_multiplier", "eye_retargeting", "lip_retargeting"):
        assert f'id="{name}" name="{name}"' in page

    def create(**values: str) -> Any:
        with test_image.open("rb") as image, test_video.open("rb") as video:
            return client.post(
                "/create",
                data={"csrf_token": _csrf(client), **values},
                files={
                    "source_image": (test_image.name, image, "image/png"),
                    "driving_video": (test_video.name, video, "video/mp4"),
                },
                headers={"Accept": "application/json"},
            )

    # The page sends "false" then "true" for a ticked box (the last value counts), "false" alone
    # for an unticked one.
    lp_options = {
        "region": "lips",
        "stitching": "false",
        "driving_multiplier": "2",
        "lip_retargeting": "true",
    }
    made = create(engine="liveportrait", **lp_options)
    assert made.status_code == 202, made.text
    job = client.get(f"/jobs/{made.json()['id']}/status", headers={"Accept": "application/json"}).json()
    assert (job["options"]["region"], job["options"]["stitching"]) == ("lips", False)
    assert job["options"]["driving_multiplier"] == 2.0
    assert (job["options"]["eye_retargeting"], job["options"]["lip_retargeting"]) == (False, True)
    bad = create(engine="landmarks", region="eyes")
    assert bad.status_code == 422
    assert (
        bad.json()["detail"]
        == "region: only the liveportrait engine has this option, not the landmarks engine."
    )
