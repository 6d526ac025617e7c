"""Engine states saved as plain data and rebuilt animate exactly as the originals."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from animatica.engines.base import Engine, StateError
from animatica.engines.fomm import FommEngine
from animatica.engines.landmarks import LandmarksEngine
from animatica.media.fit import fit_frame
from animatica.media.reader import iter_frames, read_image


def through_bytes(tree: dict) -> dict:
    """What another process gets back: a torch.save / weights-only torch.load round trip."""
    buffer = io.BytesIO()
    torch.save(tree, buffer)
    buffer.seek(0)
    return torch.load(buffer, map_location="cpu", weights_only=True)


def assert_same_tree(a, b, where: str = "state") -> None:
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_tree(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tree(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    """The demo's face photo and 20 frames of its nodding driving clip."""
    from animatica.demo import demo_source, write_demo_driving

    folder = tmp_path_factory.mktemp("face_clip")
    driving = write_demo_driving(folder / "driving.mp4", seconds=0.8)
    return demo_source(), np.stack(list(iter_frames(driving)))


def test_engines_declare_warm_up_and_state_saving(tiny_fomm_checkpoint: Path) -> None:
    for engine in (LandmarksEngine.load(), FommEngine.load(tiny_fomm_checkpoint)):
        assert isinstance(engine, Engine)
    assert LandmarksEngine.warmup_frames > 0 and FommEngine.warmup_frames == 0


def test_landmarks_state_rebuilt_mid_video_renders_the_same_frames(face_clip) -> None:
    source, driving = face_clip
    engine = LandmarksEngine.load()
    state = engine.prepare(source, driving[0])
    fresh = engine.state_from_dict(through_bytes(engine.state_to_dict(state)))
    assert np.array_equal(engine.animate(fresh, driving[:8]), engine.animate(state, driving[:8]))

    # Mid-video: the tracker and the smoother carry memory, which must survive the trip too.
    saved = through_bytes(engine.state_to_dict(state))
    assert saved["smoother"]["value"] is not None and saved["tracker"]["count"] == 9
    resumed = engine.state_from_dict(saved)
    assert np.array_equal(engine.animate(resumed, driving[8:]), engine.animate(state, driving[8:]))
    assert_same_tree(engine.state_to_dict(resumed), engine.state_to_dict(state))


def test_landmarks_states_from_one_dict_are_independent(face_clip) -> None:
    source, driving = face_clip
    engine = LandmarksEngine.load()
    saved = through_bytes(engine.state_to_dict(engine.prepare(source, driving[0])))
    first, second = engine.state_from_dict(saved), engine.state_from_dict(saved)
    engine.animate(first, driving[:6])
    assert np.array_equal(
        engine.animate(second, driving[:6]), engine.animate(engine.state_from_dict(saved), driving[:6])
    )


def test_landmarks_warm_up_tracks_like_animate_without_rendering(face_clip, monkeypatch) -> None:
    source, driving = face_clip
    engine = LandmarksEngine.load()
    animated = engine.prepare(source, driving[0])
    engine.animate(animated, driving[:10])
    warmed = engine.prepare(source, driving[0])

    def no_render(*_args, **_kwargs):
        raise AssertionError("warm-up frames are not rendered")

    monkeypatch.setattr(LandmarksEngine, "render", no_render)
    engine.warm_up(warmed, driving[:10])
    a, b = engine.state_to_dict(warmed), engine.state_to_dict(animated)
    assert (a.pop("frames"), b.pop("frames")) == (0, 10)  # warm-up frames are the segment before's
    assert_same_tree(a, b)


def test_fomm_state_round_trip_animates_identically(
    tiny_fomm_checkpoint: Path, test_image, test_video
) -> None:
    for adapt_scale in (False, True):
        engine = FommEngine.load(tiny_fomm_checkpoint, adapt_scale=adapt_scale)
        source = fit_frame(read_image(test_image), (64, 64))
        driving = np.stack([fit_frame(f, (64, 64)) for f in iter_frames(test_video)])
        state = engine.prepare(source, driving[2])
        saved = through_bytes(engine.state_to_dict(state))
        assert (saved["scale"] is None) is not adapt_scale
        assert np.array_equal(
            engine.animate(engine.state_from_dict(saved), driving), engine.animate(state, driving)
        )


def test_a_state_of_another_engine_version_or_precision_is_refused(
    tiny_fomm_checkpoint: Path, face_clip
) -> None:
    source, driving = face_clip
    landmarks = LandmarksEngine.load()
    fomm = FommEngine.load(tiny_fomm_checkpoint, precision="fp32")
    saved = landmarks.state_to_dict(landmarks.prepare(source, driving[0]))
    with pytest.raises(StateError, match="belongs to the 'landmarks' engine"):
        fomm.state_from_dict(saved)
    with pytest.raises(StateError, match="format version 99"):
        landmarks.state_from_dict({**saved, "version": 99})
    with pytest.raises(StateError, match="malformed"):
        landmarks.state_from_dict({k: v for k, v in saved.items() if k != "tracker"})
    frame = np.zeros((64, 64, 3), np.uint8)
    fomm_saved = fomm.state_to_dict(fomm.prepare(frame, frame))
    with pytest.raises(StateError, match="computed in 'bf16'"):
        fomm.state_from_dict({**fomm_saved, "precision": "bf16"})


def test_preload_loads_the_face_models_before_any_frame() -> None:
    from animatica.face import models
    from animatica.pipeline import preload

    models.frontal_detector.cache_clear()
    models.shape_predictor_68.cache_clear()
    preload("landmarks")
    assert models.frontal_detector.cache_info().currsize == 1
    assert models.shape_predictor_68.cache_info().currsize == 1


def test_preload_caches_the_networks_jobs_will_use(tiny_fomm_checkpoint: Path) -> None:
    from animatica.engines.fomm import load_networks
    from animatica.pipeline import preload

    load_networks.cache_clear()
    preload("fomm", checkpoint=str(tiny_fomm_checkpoint), precision="fp32")
    before = load_networks.cache_info()
    FommEngine.load(str(tiny_fomm_checkpoint), precision="fp32")
    after = load_networks.cache_info()
    assert (before.currsize, after.hits - before.hits, after.misses) == (1, 1, 1)
