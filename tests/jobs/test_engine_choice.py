"""The FOMM checkpoint of service jobs comes from the operator's settings, for the API, the
pages, the in-process executor and the Celery worker alike; a job asking for an engine this
server cannot run is refused before it costs anything."""

import shutil
from pathlib import Path
from typing import Any

import pytest

from animatica.errors import CheckpointError
from animatica.jobs import engine_choice
from animatica.settings import Settings

MISSING = "no-such-weights-for-this-test"


def _settings(tmp_path: Path, checkpoint: str, **extra: Any) -> Settings:
    return Settings(home=tmp_path / "home", fomm_checkpoint=checkpoint, **extra)


def test_weights_resolve_from_a_path_or_a_name_in_this_services_home(
    tmp_path: Path, tiny_fomm_checkpoint: Path
) -> None:
    by_path = engine_choice.fomm_weights(_settings(tmp_path, str(tiny_fomm_checkpoint), fomm_config="x.yaml"))
    assert by_path.checkpoint == tiny_fomm_checkpoint.resolve() and by_path.config == "x.yaml"

    settings = _settings(tmp_path, "mine")
    settings.checkpoints_dir.mkdir(parents=True)
    shutil.copy(tiny_fomm_checkpoint, settings.checkpoints_dir / "mine.pth.tar")
    assert engine_choice.fomm_weights(settings).checkpoint == settings.checkpoints_dir / "mine.pth.tar"
    assert engine_choice.fomm_weights(settings).config is None


def test_missing_or_turned_off_weights_say_so_without_naming_server_paths(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as missing:
        engine_choice.fomm_weights(_settings(tmp_path, str(tmp_path / "secret" / "gone.pth.tar")))
    assert str(tmp_path) not in str(missing.value) and "landmarks" in str(missing.value)
    with pytest.raises(CheckpointError, match="turned off"):
        engine_choice.fomm_weights(_settings(tmp_path, ""))


def test_auto_and_fomm_become_concrete_engines(tmp_path: Path, tiny_fomm_checkpoint: Path) -> None:
    have = _settings(tmp_path, str(tiny_fomm_checkpoint))
    lack = _settings(tmp_path, MISSING)
    # auto is fomm only with weights the operator made the default (ANIMATICA_ENGINE=fomm), so
    # weights that merely resolve (the shipped shapes model, say) leave it on landmarks...
    assert engine_choice.concrete_engine(have, "auto") == "landmarks"
    assert engine_choice.concrete_engine(lack, "auto") == "landmarks"
    assert (
        engine_choice.concrete_engine(_settings(tmp_path, str(tiny_fomm_checkpoint), engine="fomm"), "auto")
        == "fomm"
    )
    # ...and an operator default of fomm without weights is refused like an explicit request.
    with pytest.raises(CheckpointError):
        engine_choice.concrete_engine(_settings(tmp_path, MISSING, engine="fomm"), "auto")
    assert engine_choice.concrete_engine(have, "fomm") == "fomm"
    with pytest.raises(CheckpointError):
        engine_choice.concrete_engine(lack, "fomm")
    assert engine_choice.weights_for(have, "fomm") == engine_choice.EngineWeights(
        tiny_fomm_checkpoint.resolve(), None
    )
    assert engine_choice.weights_for(have, "landmarks") is None
    assert [(s.id, s.available) for s in engine_choice.engine_statuses(lack)] == [
        ("landmarks", True),
        ("fomm", False),
        ("liveportrait", False),  # no weights in this home
        ("vaegan", True),  # the shipped vaegan-demo model
    ]


def test_the_services_auto_is_the_command_lines_rule_with_the_operators_weights(
    tmp_path: Path, tiny_fomm_checkpoint: Path
) -> None:
    from animatica.engines import choose_engine

    opted_in = _settings(tmp_path, str(tiny_fomm_checkpoint), engine="fomm")
    for settings in (opted_in, _settings(tmp_path, str(tiny_fomm_checkpoint)), _settings(tmp_path, "")):
        weights = engine_choice.default_weights(settings)
        assert engine_choice.default_engine(settings) == choose_engine("auto", weights)
    assert engine_choice.default_weights(opted_in) == str(tiny_fomm_checkpoint)
    assert engine_choice.default_weights(_settings(tmp_path, str(tiny_fomm_checkpoint))) is None
    # fomm as the default with the engine turned off: auto falls back to the engine that runs.
    assert engine_choice.default_engine(_settings(tmp_path, "", engine="fomm")) == "landmarks"
    # The listing's default does not check the weights; asking for a job does.
    assert engine_choice.default_engine(_settings(tmp_path, MISSING, engine="fomm")) == "fomm"


def test_weights_for_a_job_are_the_operators_and_only_for_fomm(
    tmp_path: Path, tiny_fomm_checkpoint: Path
) -> None:
    from animatica.jobs.options import JobOptions

    have = _settings(tmp_path, str(tiny_fomm_checkpoint), fomm_config="vox-256")
    assert engine_choice.weights_for(have, "landmarks") is None
    assert engine_choice.weights_for(have, "auto") is None  # the operator did not opt in
    weights = engine_choice.weights_for(have, "fomm")
    assert weights == engine_choice.EngineWeights(tiny_fomm_checkpoint.resolve(), "vox-256")
    with pytest.raises(CheckpointError):
        engine_choice.weights_for(_settings(tmp_path, MISSING), "fomm")
    # A planted path in the stored options never reaches the pipeline.
    job = JobOptions.from_row("fomm", {"checkpoint": "/planted", "config": "planted"})
    fields = job.request_fields(
        tmp_path / "s.png", tmp_path / "d.mp4", tmp_path / "o/", weights=weights,
        device=have.device, precision=have.precision, batch_size=have.batch_size,
    )  # fmt: skip
    assert fields["checkpoint"] == str(tiny_fomm_checkpoint.resolve()) and fields["config"] == "vox-256"


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_api_refuses_fomm_without_weights_before_taking_a_credit(
    make_client: Any, api: Any, media: dict[str, Path], settings: Settings
) -> None:
    client = make_client(worker=False, fomm_checkpoint=MISSING)
    tokens = api.signup_login(client, "alice")
    refused = api.submit(client, tokens, media["image"], media["video"], engine="fomm")
    assert refused.status_code == 422
    assert "no FOMM model weights" in refused.json()["detail"]
    assert api.credits(client, tokens) == 3
    assert _files(Path(settings.storage_url.removeprefix("file://"))) == []
    engines = client.get("/api/v1/engines", headers=api.bearer(tokens)).json()
    assert engines["default"] == "landmarks"
    fomm = next(e for e in engines["engines"] if e["id"] == "fomm")
    assert fomm["available"] is False and "landmarks" in fomm["reason"]
    auto = api.submit(client, tokens, media["image"], media["video"], engine="auto")
    assert auto.status_code == 202 and auto.json()["engine"] == "landmarks"


def test_api_accepts_fomm_when_weights_resolve(
    make_client: Any, api: Any, media: dict[str, Path], tiny_fomm_checkpoint: Path
) -> None:
    client = make_client(worker=False, fomm_checkpoint=str(tiny_fomm_checkpoint), engine="fomm")
    tokens = api.signup_login(client, "alice")
    engines = client.get("/api/v1/engines", headers=api.bearer(tokens)).json()["engines"]
    assert {e["id"]: e["available"] for e in engines} == {
        "landmarks": True,
        "fomm": True,
        "liveportrait": False,
        "vaegan": True,
    }
    for asked in ("fomm", "auto"):
        job = api.submit(client, tokens, media["image"], media["video"], engine=asked)
        assert job.status_code == 202 and job.json()["engine"] == "fomm"
        assert "checkpoint" not in job.json()["options"]
    assert api.credits(client, tokens) == 1
    assert client.get("/api/v1/engines").status_code == 401


def test_executor_takes_the_checkpoint_from_settings_never_from_the_job(
    tmp_path: Path, tiny_fomm_checkpoint: Path
) -> None:
    from tests.jobs.distributed.media_inputs import decode_video, face_inputs

    from animatica.jobs.animation import execution
    from animatica.jobs.lifecycle import ThreadExecutor

    source, driving = face_inputs(tmp_path, frames=4, size=64, audio=False)
    planted = {"checkpoint": str(tmp_path / "planted.pth.tar"), "config": "planted.yaml"}
    run = ThreadExecutor(_settings(tmp_path, str(tiny_fomm_checkpoint), torch_threads=1))
    output = tmp_path / "out.mp4"
    result = run(execution(source, driving, output, "fomm", planted), lambda _p: None, lambda: False)
    assert result.frames == 4 and len(decode_video(output)) == 4

    lacking = ThreadExecutor(_settings(tmp_path, MISSING))
    with pytest.raises(CheckpointError, match="no FOMM model weights"):
        lacking(execution(source, driving, tmp_path / "no.mp4", "fomm", {}), lambda _p: None, lambda: False)
    assert not (tmp_path / "no.mp4").exists()


def test_celery_worker_requests_use_its_own_settings(tmp_path: Path, tiny_fomm_checkpoint: Path) -> None:
    from animatica.jobs.animation import execution, request_fields
    from animatica.pipeline import AnimationRequest

    job = execution(
        tmp_path / "s.png",
        tmp_path / "d.mp4",
        tmp_path / "o/",
        "fomm",
        {"relative": False, "checkpoint": "/planted", "config": "planted"},
    )
    settings = _settings(tmp_path, str(tiny_fomm_checkpoint), fomm_config="vox-256")
    request = AnimationRequest(**request_fields(settings, job, start=3))
    assert request.engine == "fomm" and request.checkpoint == str(tiny_fomm_checkpoint.resolve())
    assert request.config == "vox-256" and request.relative is False and request.start == 3
    with pytest.raises(CheckpointError):
        request_fields(_settings(tmp_path, MISSING), job)
