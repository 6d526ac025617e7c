"""The faceswap-onnx engine (the operator's own ONNX models) behind the engine protocol, on the
command line and as a service job; random-weight models of the real signatures stand in for the
real files."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.cli.test_cli import assert_one_line_error_in_process, invoke
from tests.face import onnx_models
from tests.face.swap_faces import astronaut_face, other_person, side_by_side, turning_clip, write_swap_inputs

from animatica.engines import (
    ENGINES,
    ONNX_SWAP_ENGINE,
    SWAP_ENGINES,
    choose_engine,
    load_engine,
    offered_swap_engines,
)
from animatica.engines.base import Engine, StateError
from animatica.engines.faceswap_onnx import OnnxSwapEngine
from animatica.errors import AnimaticaError
from animatica.face import onnx_swap as ox
from animatica.face.analyzer import NoFaceError, get_analyzer
from animatica.face.tracks import reference_embedding


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    swapper, recogniser = onnx_models.pair(tmp_path_factory.mktemp("models"))
    return {"swap_model": str(swapper), "identity_model": str(recogniser)}


@pytest.fixture(scope="module")
def engine(files) -> OnnxSwapEngine:
    return OnnxSwapEngine(source_name="me.png", **files)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return turning_clip(8)


def roundtrip(engine: OnnxSwapEngine, state):
    buffer = io.BytesIO()
    torch.save(engine.state_to_dict(state), buffer)
    buffer.seek(0)
    return engine.state_from_dict(torch.load(buffer, weights_only=True))


def test_the_engine_is_a_swap_engine_offered_only_with_both_files(files) -> None:
    assert ENGINES[ONNX_SWAP_ENGINE].kind == "swap" and ONNX_SWAP_ENGINE in SWAP_ENGINES
    assert offered_swap_engines(False) == ("faceswap",)
    assert offered_swap_engines(True) == ("faceswap", ONNX_SWAP_ENGINE)
    # Someone who installed their own models means them to be used; otherwise no weights.
    assert choose_engine("auto", "models", kind="swap") == ONNX_SWAP_ENGINE
    assert choose_engine("auto", None, kind="swap") == "faceswap"
    with pytest.raises(AnimaticaError, match="swaps faces, it does not animate"):
        choose_engine(ONNX_SWAP_ENGINE, None, kind="animation")
    with pytest.raises(AnimaticaError, match=r"set ANIMATICA_SWAP_MODEL to .* ANIMATICA_SWAP_IDENTITY_MODEL"):
        load_engine(ONNX_SWAP_ENGINE, checkpoint=None, swap_model="", identity_model=files["identity_model"])
    assert isinstance(load_engine(ONNX_SWAP_ENGINE, checkpoint=None, **files), Engine)
    with pytest.raises(AnimaticaError, match="has no option blend"):
        OnnxSwapEngine(blend="feather", **files)


def test_the_face_is_replaced_frame_by_frame_and_nothing_else(engine, clip) -> None:
    assert engine.frame_size is None and engine.warmup_frames > 0
    state = engine.prepare(other_person(), clip[0])
    assert state.latent.shape == (512,) and abs(float(np.linalg.norm(state.latent)) - 1) < 1e-5
    out = engine.animate(state, clip)
    assert out.shape == clip.shape and out.dtype == np.uint8
    face = (slice(60, 160), slice(110, 210))
    for i in range(8):
        assert np.abs(out[i][face].astype(int) - clip[i][face]).mean() > 5, i
        assert np.array_equal(out[i][:, :30], clip[i][:, :30])  # far from the face: untouched
    assert np.array_equal(out[8:], clip[8:])
    assert state.frames == 10 and state.frames_unchanged == 2
    assert state.face_notes == ["2 of 10 frames had no face to swap and were left unchanged."]


def test_a_chunk_swapped_in_one_batch_equals_its_frames_one_by_one(engine, clip) -> None:
    photo = other_person()
    together = engine.animate(engine.prepare(photo, clip[0]), clip[:5])
    state = engine.prepare(photo, clip[0])
    alone = np.concatenate([engine.animate(state, clip[i : i + 1]) for i in range(5)])
    assert np.abs(together.astype(int) - alone).max() <= 1  # float summation order at most


def test_another_photo_gives_another_face(engine, clip) -> None:
    a = engine.animate(engine.prepare(other_person(), clip[0]), clip[:2])
    b = engine.animate(engine.prepare(other_person(index=5), clip[0]), clip[:2])
    assert np.abs(a.astype(int) - b).mean() > 0.5
    assert np.abs(a[:, 60:160, 110:210].astype(int) - b[:, 60:160, 110:210]).mean() > 5


def test_a_saved_state_renders_bit_identically_and_a_warmed_segment_joins(engine, clip) -> None:
    state = engine.prepare(other_person(), clip[0])
    whole = engine.animate(state, clip[:8])
    state = engine.prepare(other_person(), clip[0])
    engine.animate(state, clip[:3])
    copy = roundtrip(engine, state)
    assert np.array_equal(engine.animate(copy, clip[3:8]), whole[3:8])
    segment = roundtrip(engine, engine.prepare(other_person(), clip[0]))
    engine.warm_up(segment, clip[:4])
    assert np.array_equal(engine.animate(segment, clip[4:8]), whole[4:8]) and segment.frames == 4
    with pytest.raises(StateError, match="belongs to the 'faceswap' engine"):
        engine.state_from_dict({"engine": "faceswap", "version": 1})
    with pytest.raises(StateError, match="incomplete or malformed"):
        engine.state_from_dict({**engine.state_to_dict(state), "latent": torch.zeros(128)})


def test_only_the_person_of_the_reference_photo_is_swapped(files) -> None:
    actor, bystander = astronaut_face(200), other_person(200, 240)
    frame = side_by_side(bystander, actor)
    reference = reference_embedding(astronaut_face(200), get_analyzer())
    engine = OnnxSwapEngine(which="reference", reference=[float(v) for v in reference], **files)
    out = engine.animate(engine.prepare(other_person(index=5), frame), frame[None])[0]
    split = 40 + 240 + 20  # between the two people
    assert np.array_equal(out[:, :split], frame[:, :split])
    assert np.abs(out[:, split:].astype(int) - frame[:, split:]).mean() > 1
    every = OnnxSwapEngine(which="all", **files)
    both = every.animate(every.prepare(other_person(index=5), frame), frame[None])[0]
    assert not np.array_equal(both[:, :split], frame[:, :split])


def test_a_photo_or_a_video_without_a_face_is_refused(engine, clip) -> None:
    with pytest.raises(NoFaceError, match=r"No face was found in the face photo me\.png"):
        engine.prepare(np.full((64, 64, 3), 100, np.uint8), clip[0])
    with pytest.raises(NoFaceError, match="No face was found anywhere in the video"):
        engine.check_driving(iter(clip[8:]), 10.0)
    engine.check_driving(iter(clip), 10.0)


# --- the command line and the service ---


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_swap_inputs(tmp_path_factory.mktemp("swap-onnx"))


def test_the_command_swaps_a_clip_with_the_operators_models(inputs, files, tmp_path) -> None:
    from animatica.media.probe import probe
    from animatica.media.reader import iter_frames

    photo, clip = inputs
    out = tmp_path / "swapped.mp4"
    settings = {
        "ANIMATICA_SWAP_MODEL": files["swap_model"],
        "ANIMATICA_SWAP_IDENTITY_MODEL": files["identity_model"],
    }
    result = invoke(
        "swap", "--face", str(photo), "--video", str(clip), "-o", str(out), "--engine", "faceswap-onnx", "-q",
        settings=settings,
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    assert "10 frames" in result.stdout
    assert probe(out).has_audio
    before, after = list(iter_frames(clip)), list(iter_frames(out))
    assert len(after) == len(before) == 10
    for b, a in zip(before, after, strict=True):
        face = np.abs(a[60:110, 75:120].astype(int) - b[60:110, 75:120]).mean()
        corner = np.abs(a[:25, 150:].astype(int) - b[:25, 150:]).mean()  # the wall: only coding noise
        assert face > 4 * corner and face > 4, (face, corner)


def test_the_command_without_the_models_says_which_settings_to_set(inputs, tmp_path) -> None:
    photo, clip = inputs
    out = tmp_path / "out.mp4"
    result = invoke("swap", "-f", str(photo), "-v", str(clip), "-o", str(out), "--engine", "faceswap-onnx")
    assert_one_line_error_in_process(result, "ANIMATICA_SWAP_MODEL", "ANIMATICA_SWAP_IDENTITY_MODEL")
    assert not out.exists()


def test_a_service_job_runs_on_the_workers_own_model_files(inputs, files, tmp_path) -> None:
    from animatica.jobs import face_swap, kinds
    from animatica.jobs.engine_choice import swap_engine
    from animatica.media.limits import MediaLimits
    from animatica.media.reader import iter_frames
    from animatica.settings import Settings
    from animatica.swapping import SwapSettings, swap_options

    photo, clip = inputs
    plain = Settings(home=tmp_path / "home")
    assert swap_engine(plain) == "faceswap"
    missing = Settings(
        home=tmp_path / "home",
        swap_model=str(tmp_path / "gone.onnx"),
        swap_identity_model=files["identity_model"],
    )
    assert swap_engine(missing) == "faceswap"  # the operator's to fix (logged); users still get a swap
    settings = Settings(
        home=tmp_path / "home", swap_model=files["swap_model"], swap_identity_model=files["identity_model"]
    )
    engine = swap_engine(settings)
    assert engine == ONNX_SWAP_ENGINE
    # What a submission stores: the choice, never a path (nor the weights-free engine's blend).
    row = swap_options(SwapSettings(), reference=None, fps=10.0, limits=MediaLimits(), engine=engine)
    assert set(row) == {"which", "smoothing", "reference_threshold", "fps"}
    kind = kinds.get(face_swap.NAME)
    out = tmp_path / "result.mp4"
    fields = kind.request(settings, face_swap.execution(photo, clip, out, engine, {**row, "max_frames": 10}))
    assert fields["engine"] == ONNX_SWAP_ENGINE
    assert fields["engine_options"]["swap_model"] == files["swap_model"]  # the worker's own files
    result = kind.run(fields, lambda _p: None, lambda: False)
    assert result.frames == 10
    before, after = list(iter_frames(clip)), list(iter_frames(out))
    assert np.abs(after[5][60:110, 75:120].astype(int) - before[5][60:110, 75:120]).mean() > 4
    # A worker without the files refuses the job before a frame, saying which setting is missing.
    with pytest.raises(AnimaticaError, match="ANIMATICA_SWAP_MODEL"):
        kind.request(plain, face_swap.execution(photo, clip, out, engine, row))
    # A worker loads the operator's models when it starts (a wrong file shows then, in its log).
    wrong = onnx_models.recogniser(tmp_path / "arc-as-swapper.onnx")
    with pytest.raises(ox.ModelFileError, match=r"arc-as-swapper\.onnx \(ANIMATICA_SWAP_MODEL\)"):
        face_swap.warm(settings.model_copy(update={"swap_model": str(wrong)}))


def test_a_wrong_model_file_is_a_one_line_error(inputs, files, tmp_path) -> None:
    photo, clip = inputs
    wrong = onnx_models.recogniser(tmp_path / "not-a-swapper.onnx")
    settings = {"ANIMATICA_SWAP_MODEL": str(wrong), "ANIMATICA_SWAP_IDENTITY_MODEL": files["identity_model"]}
    result = invoke(
        "swap", "-f", str(photo), "-v", str(clip), "-o", str(tmp_path / "o.mp4"), settings=settings
    )
    assert_one_line_error_in_process(result, "not-a-swapper.onnx (ANIMATICA_SWAP_MODEL)", "inswapper_128")
    assert isinstance(ox.ModelFileError("x"), AnimaticaError)
