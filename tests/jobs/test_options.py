"""The one model of a job's options: checked once, stored on the job row and read back (old rows
too), and turned into pipeline arguments with the machine's weights and settings, never the job's."""

import json
from pathlib import Path

import pytest

from animatica.errors import CheckpointError
from animatica.jobs.engine_choice import EngineWeights
from animatica.jobs.options import InvalidOptions, JobOptions
from animatica.pipeline import AnimationRequest

WEIGHTS = EngineWeights(Path("/operator/vox.pth.tar"), "vox-256")
MACHINE = {"device": "cpu", "precision": "fp32", "batch_size": 2}


def test_defaults_are_what_a_request_that_names_nothing_gets() -> None:
    options = JobOptions()
    assert (options.engine, options.relative, options.adapt_scale) == ("auto", True, False)
    assert (options.crop_face, options.find_best_frame, options.fit) == (
        None,
        False,
        "crop",
    )  # crop: as the engine wants
    assert options.max_frames is None and options.frame_rate is None


def test_unknown_names_and_wrong_types_are_refused_with_one_error_the_service_answers_422() -> None:
    from animatica.service.errors import status_for

    with pytest.raises(InvalidOptions) as engine:
        JobOptions(engine="magic")
    assert str(engine.value) == (
        "Unknown engine 'magic'; use one of landmarks, fomm, liveportrait, vaegan, auto."
    )
    with pytest.raises(InvalidOptions) as fit:
        JobOptions(fit="zoom")
    assert str(fit.value) == "Unknown fit 'zoom'; use one of crop, pad, stretch."
    with pytest.raises(InvalidOptions, match="Invalid relative"):
        JobOptions(relative="sometimes")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptions, match="Invalid max_frames"):
        JobOptions(max_frames=0)
    with pytest.raises(InvalidOptions, match="Unknown fit"):
        JobOptions().but(fit="zoom")  # copies are checked like new models
    assert status_for(engine.value) == status_for(fit.value) == 422


def test_the_row_round_trip_keeps_every_field_and_the_engine_in_its_own_column() -> None:
    options = JobOptions(
        engine="fomm", relative=False, crop_face=True, fit="pad", max_frames=151, frame_rate=10.0
    )
    row = options.to_row()
    assert "engine" not in row
    assert json.loads(json.dumps(row)) == row  # the column is JSON
    assert JobOptions.from_row("fomm", row) == options


def test_older_rows_load_with_defaults_and_keys_nobody_may_set_are_dropped() -> None:
    old = {"relative": False, "adapt_scale": True, "max_frames": 90}  # before fit and frame_rate
    options = JobOptions.from_row("landmarks", old)
    assert options.relative is False and options.adapt_scale is True and options.max_frames == 90
    assert options.fit == "crop" and options.frame_rate is None
    planted = JobOptions.from_row(
        "fomm", {"checkpoint": "/planted", "config": "planted.yaml", "best_frame": 3}
    )
    assert "checkpoint" not in planted.to_row() and "best_frame" not in planted.to_row()
    assert JobOptions.from_row("landmarks", {}) == JobOptions(engine="landmarks")


def test_request_fields_take_weights_and_machine_settings_from_the_caller() -> None:
    options = JobOptions.from_row(
        "fomm", {"relative": False, "fit": "pad", "max_frames": 40, "checkpoint": "/x"}
    )
    fields = options.request_fields(Path("s.png"), Path("d.mp4"), "out/", weights=WEIGHTS, **MACHINE)
    assert fields["engine"] == "fomm"
    assert (fields["checkpoint"], fields["config"]) == ("/operator/vox.pth.tar", "vox-256")
    assert (fields["device"], fields["precision"], fields["batch_size"]) == ("cpu", "fp32", 2)
    assert (fields["relative"], fields["fit"], fields["max_frames"]) == (False, "pad", 40)
    assert "frame_rate" not in fields  # measured on upload; not a pipeline argument
    request = AnimationRequest(**fields)
    assert request.output == "out/" and request.source == Path("s.png")

    landmarks = JobOptions(engine="landmarks").request_fields(
        Path("s"), Path("d"), Path("o"), weights=WEIGHTS, **MACHINE
    )
    assert landmarks["engine"] == "landmarks" and "checkpoint" not in landmarks
    with pytest.raises(CheckpointError):
        JobOptions(engine="fomm").request_fields(Path("s"), Path("d"), Path("o"), weights=None, **MACHINE)


def test_auto_resolves_by_the_command_lines_rule_with_the_weights_given() -> None:
    auto = JobOptions()
    with_weights = auto.request_fields(Path("s"), Path("d"), Path("o"), weights=WEIGHTS, **MACHINE)
    without = auto.request_fields(Path("s"), Path("d"), Path("o"), weights=None, **MACHINE)
    assert (with_weights["engine"], without["engine"]) == ("fomm", "landmarks")
