"""Prepare once, animate many times: a prepared job is bytes any worker can use, and gives the same
frames as an animation that prepares for itself, without doing the once-per-job work again."""

import io
import pickle
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animatica.engines.fomm import FommEngine
from animatica.engines.landmarks import LandmarksEngine
from animatica.media.reader import iter_frames
from animatica.pipeline import (
    PREPARED_FORMAT,
    AnimationRequest,
    PreparedJob,
    StateError,
    animate,
    animate_frames,
    prepare,
)


def fomm_request(source: Path, driving: Path, output: Path | str, checkpoint: Path, **kw) -> AnimationRequest:
    return AnimationRequest(source=source, driving=driving, output=output, checkpoint=str(checkpoint), **kw)


def frames_of(folder: Path) -> np.ndarray:
    return np.stack(list(iter_frames(folder)))


@pytest.fixture(scope="module")
def face_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo's face photo and a 2 s nodding clip made from it (50 frames)."""
    from animatica.demo import demo_source, write_demo_driving

    folder = tmp_path_factory.mktemp("face_inputs")
    source = folder / "face.png"
    Image.fromarray(demo_source()).save(source)
    return source, write_demo_driving(folder / "driving.mp4", seconds=2.0)


def test_prepared_job_round_trips_through_bytes(
    tiny_fomm_checkpoint, test_image, test_video, tmp_path
) -> None:
    job = prepare(
        fomm_request(test_image, test_video, tmp_path / "unused.mp4", tiny_fomm_checkpoint, best_frame=4)
    )
    assert job.engine == "fomm" and job.initial_frame == 4 and job.boxes is None
    back = PreparedJob.from_bytes(job.to_bytes())
    assert (back.engine, back.key, back.initial_frame, back.boxes) == (job.engine, job.key, 4, None)
    assert back.state.keys() == job.state.keys()
    for name in ("image", "features", "scale"):
        a, b = job.state[name], back.state[name]
        assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_fomm_with_a_prepared_job_gives_the_same_frames(
    tiny_fomm_checkpoint, test_image, test_video, tmp_path, as_bytes
) -> None:
    def run(name: str, prepared: PreparedJob | bytes | None = None, **kw) -> np.ndarray:
        out = tmp_path / name
        request = fomm_request(test_image, test_video, f"{out}/", tiny_fomm_checkpoint, best_frame=3, **kw)
        animate(request, prepared=prepared)
        return frames_of(out)

    job = prepare(
        fomm_request(test_image, test_video, tmp_path / "u.mp4", tiny_fomm_checkpoint, best_frame=3)
    )
    prepared = job.to_bytes() if as_bytes else job
    whole = run("whole")
    assert np.array_equal(run("again", prepared=prepared), whole)
    assert np.array_equal(run("segment", start=5, stop=9, keep_audio=False, prepared=prepared), whole[5:9])


def test_landmarks_with_a_prepared_job_gives_the_same_frames(face_inputs, tmp_path) -> None:
    source, driving = face_inputs
    blob = prepare(AnimationRequest(source, driving, tmp_path / "u.mp4")).to_bytes()

    def run(name: str, prepared: bytes | None = None, **kw) -> np.ndarray:
        out = tmp_path / name
        animate(AnimationRequest(source, driving, f"{out}/", keep_audio=False, **kw), prepared=prepared)
        return frames_of(out)

    assert np.array_equal(run("whole_prepared", prepared=blob), run("whole"))
    # A segment starts early (warm-up) from the prepared state as it does when it prepares itself.
    segment = dict(start=30, stop=40)
    assert np.array_equal(run("seg_prepared", prepared=blob, **segment), run("seg", **segment))
    frames = list(animate_frames(AnimationRequest(source, driving, "unused/", **segment), prepared=blob))
    assert np.array_equal(np.stack(frames), run("seg_again", prepared=blob, **segment))


@pytest.mark.slow
def test_a_prepared_segment_does_no_once_per_job_work_again(
    tiny_fomm_checkpoint, face_inputs, tmp_path, monkeypatch
):
    """Face crop on the source, the best-frame search, the face-box pass and engine.prepare run in
    ``prepare`` and never in a segment that is given its result."""
    import animatica.face.best_frame
    import animatica.face.crop

    source, driving = face_inputs
    calls: dict[str, int] = {}

    def counted(owner, name: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    counted(animatica.face.crop, "crop_image")
    counted(animatica.face.crop, "track_boxes")
    counted(animatica.face.best_frame, "find_best_frame")
    counted(FommEngine, "prepare")
    counted(LandmarksEngine, "prepare")
    options = dict(crop_face=True, find_best_frame=True, keep_audio=False)
    whole = tmp_path / "whole"
    animate(fomm_request(source, driving, f"{whole}/", tiny_fomm_checkpoint, **options))
    job = prepare(fomm_request(source, driving, "unused/", tiny_fomm_checkpoint, **options))
    assert job.boxes is not None and len(job.boxes) == 50
    blob = job.to_bytes()
    once = {"crop_image": 2, "track_boxes": 2, "find_best_frame": 2, "prepare": 2}
    assert calls == once

    segment = tmp_path / "segment"
    animate(
        fomm_request(source, driving, f"{segment}/", tiny_fomm_checkpoint, start=20, stop=30, **options),
        prepared=blob,
    )
    assert np.array_equal(frames_of(segment), frames_of(whole)[20:30])

    landmarks_blob = prepare(AnimationRequest(source, driving, "unused/", crop_face=True)).to_bytes()
    assert calls["prepare"] == 3
    list(
        animate_frames(
            AnimationRequest(source, driving, "unused/", crop_face=True, start=20, stop=25),
            prepared=landmarks_blob,
        )
    )
    assert calls == {"crop_image": 3, "track_boxes": 3, "find_best_frame": 2, "prepare": 3}


def test_damaged_and_foreign_blobs_are_refused(
    tiny_fomm_checkpoint, test_image, test_video, tmp_path
) -> None:
    request = fomm_request(test_image, test_video, f"{tmp_path / 'out'}/", tiny_fomm_checkpoint)
    blob = prepare(request).to_bytes()

    def refused(data: bytes, match: str) -> None:
        with pytest.raises(StateError, match=match):
            PreparedJob.from_bytes(data)
        with pytest.raises(StateError, match=match):
            animate(request, prepared=data)
        assert not (tmp_path / "out").exists()

    refused(b"not a prepared job", "damaged or is not an Animatica prepared state")
    refused(blob[: len(blob) // 2], "damaged")
    # Any pickled object other than plain data is refused before it is built.
    refused(pickle.dumps(Fraction(1, 3), protocol=2), "damaged")
    foreign = io.BytesIO()
    torch.save({"weights": torch.zeros(3)}, foreign)
    refused(foreign.getvalue(), "not an Animatica prepared state")
    tree = torch.load(io.BytesIO(blob), weights_only=True)
    assert tree["format"] == PREPARED_FORMAT
    other_version = io.BytesIO()
    torch.save({**tree, "version": 99}, other_version)
    refused(other_version.getvalue(), "format version 99")


def test_a_blob_prepared_for_other_inputs_or_options_is_refused(
    tiny_fomm_checkpoint, test_image, test_video, tmp_path
) -> None:
    blob = prepare(fomm_request(test_image, test_video, "unused/", tiny_fomm_checkpoint)).to_bytes()
    other_image = tmp_path / "other.png"
    Image.fromarray(np.full((50, 40, 3), 120, np.uint8)).save(other_image)
    mismatched = [
        (fomm_request(other_image, test_video, tmp_path / "a.mp4", tiny_fomm_checkpoint), "other inputs"),
        (
            fomm_request(test_image, test_video, tmp_path / "b.mp4", tiny_fomm_checkpoint, fit="pad"),
            "options",
        ),
        (
            fomm_request(test_image, test_video, tmp_path / "c.mp4", tiny_fomm_checkpoint, relative=False),
            "options",
        ),
        (
            fomm_request(test_image, test_video, tmp_path / "d.mp4", tiny_fomm_checkpoint, best_frame=2),
            "frame 0",
        ),
        (AnimationRequest(test_image, test_video, tmp_path / "e.mp4", engine="landmarks"), "fomm engine"),
    ]
    for request, match in mismatched:
        with pytest.raises(StateError, match=match):
            animate(request, prepared=blob)
        assert not Path(request.output).exists()
