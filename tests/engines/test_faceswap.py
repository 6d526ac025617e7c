"""The faceswap engine behind the engine protocol, and its place in the list of engines."""

import io

import numpy as np
import pytest
import torch
from tests.face.swap_faces import other_person, turning_clip

from animatica.engines import (
    ANIMATION_ENGINES,
    ENGINES,
    REQUESTABLE,
    SWAP_ENGINES,
    choose_engine,
    load_engine,
)
from animatica.engines.base import Engine, StateError
from animatica.engines.faceswap import FaceSwapEngine
from animatica.errors import AnimaticaError
from animatica.face.analyzer import NoFaceError


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return turning_clip(10)


@pytest.fixture(scope="module")
def engine() -> FaceSwapEngine:
    return FaceSwapEngine(source_name="me.png")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return other_person()


def roundtrip(engine: FaceSwapEngine, state):
    """The state through the bytes a worker would store (plain data only)."""
    buffer = io.BytesIO()
    torch.save(engine.state_to_dict(state), buffer)
    buffer.seek(0)
    return engine.state_from_dict(torch.load(buffer, weights_only=True))


def test_faceswap_is_a_swap_engine_kept_out_of_animation_lists() -> None:
    assert ENGINES["faceswap"].kind == "swap"
    assert SWAP_ENGINES == ("faceswap", "faceswap-onnx")
    assert "faceswap" not in ANIMATION_ENGINES and "faceswap" not in REQUESTABLE
    assert choose_engine("auto", None, kind="swap") == "faceswap"
    assert choose_engine("faceswap", None) == "faceswap"  # the pipeline runs what it is given
    with pytest.raises(AnimaticaError, match="swaps faces, it does not animate"):
        choose_engine("faceswap", None, kind="animation")
    with pytest.raises(AnimaticaError, match="animates a photo, it does not swap faces"):
        choose_engine("landmarks", None, kind="swap")
    assert isinstance(load_engine("faceswap", checkpoint=None, source_name="x.png"), Engine)


def test_frames_come_out_at_the_videos_size_with_the_face_replaced_and_empty_frames_untouched(
    engine, photo, clip
) -> None:
    assert engine.frame_size is None and engine.warmup_frames > 0
    state = engine.prepare(photo, clip[0])
    out = engine.animate(state, clip)
    assert out.shape == clip.shape and out.dtype == np.uint8
    face = (slice(60, 160), slice(110, 210))
    for i in range(10):
        assert np.abs(out[i][face].astype(int) - clip[i][face]).mean() > 3, i
        assert np.array_equal(out[i][:, :40], clip[i][:, :40])  # away from the face: untouched
    assert np.array_equal(out[10:], clip[10:])
    assert state.frames == 12 and state.frames_unchanged == 2
    assert state.face_notes == ["2 of 12 frames had no face to swap and were left unchanged."]


def test_a_saved_state_renders_bit_identically(engine, photo, clip) -> None:
    state = engine.prepare(photo, clip[0])
    engine.animate(state, clip[:4])
    copy = roundtrip(engine, state)
    again = roundtrip(engine, state)
    expected = engine.animate(state, clip[4:10])
    assert np.array_equal(engine.animate(copy, clip[4:10]), expected)
    assert np.array_equal(engine.animate(again, clip[4:10]), expected)  # each load is a fresh state


def test_warm_up_tracks_like_animate_so_a_segment_joins_a_whole_run(engine, photo, clip) -> None:
    whole = engine.animate(engine.prepare(photo, clip[0]), clip[:10])
    segment = roundtrip(engine, engine.prepare(photo, clip[0]))
    engine.warm_up(segment, clip[:5])
    assert np.array_equal(engine.animate(segment, clip[5:10]), whole[5:10])
    assert segment.frames == 5  # warm-up frames belong to the segment before


def test_bad_photos_options_and_states_are_refused(engine, clip) -> None:
    with pytest.raises(NoFaceError, match=r"No face was found in the face photo me\.png"):
        engine.prepare(np.full((64, 64, 3), 100, np.uint8), clip[0])
    with pytest.raises(AnimaticaError, match="Unknown face choice"):
        FaceSwapEngine(which="tallest")
    with pytest.raises(AnimaticaError, match="needs a reference photo"):
        FaceSwapEngine(which="reference")
    with pytest.raises(AnimaticaError, match="Unknown blend"):
        FaceSwapEngine(blend="paste")
    with pytest.raises(StateError, match="belongs to the 'landmarks' engine"):
        engine.state_from_dict({"engine": "landmarks", "version": 1})
    with pytest.raises(StateError, match="incomplete or malformed"):
        engine.state_from_dict({"engine": "faceswap", "version": 1})
