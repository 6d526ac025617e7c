"""The pipeline end to end with real files and a small real FOMM network."""

from pathlib import Path

import av
import numpy as np
import pytest

from animatica.engines.fomm import FommEngine
from animatica.errors import AnimaticaError, MediaError
from animatica.media.fit import fit_frame
from animatica.media.reader import iter_frames, read_image
from animatica.pipeline import AnimationRequest, Cancelled, Progress, animate


def request(source: Path, driving: Path, output: Path, checkpoint: Path, **kw) -> AnimationRequest:
    return AnimationRequest(source=source, driving=driving, output=output, checkpoint=str(checkpoint), **kw)


def read_video(path: Path) -> tuple[list[np.ndarray], float, bool]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        return frames, float(stream.average_rate), len(c.streams.audio) > 0


def test_mp4_output_keeps_frame_count_rate_and_audio(
    tiny_fomm_checkpoint, test_image, test_video, tmp_path
) -> None:
    events: list[Progress] = []
    out = tmp_path / "out.mp4"
    result = animate(
        request(test_image, test_video, out, tiny_fomm_checkpoint, batch_size=5), on_progress=events.append
    )
    frames, fps, has_audio = read_video(out)
    assert result.frames == len(frames) == 12
    assert frames[0].shape == (64, 64, 3)
    assert fps == pytest.approx(25)
    assert has_audio and result.has_audio
    animate_events = [e for e in events if e.stage == "animate"]
    assert [e.done for e in animate_events] == [5, 10, 12]
    assert all(e.total == 12 for e in animate_events)
    assert events[-1].stage == "done"


def test_png_folder_output_is_lossless_engine_output(
    tiny_fomm_checkpoint, test_image, test_video, tmp_path
) -> None:
    out = tmp_path / "frames"
    animate(request(test_image, test_video, Path(str(out) + "/"), tiny_fomm_checkpoint, best_frame=3))
    written = sorted(out.iterdir())
    assert [p.name for p in written[:2]] == ["00000.png", "00001.png"] and len(written) == 12

    # The same frames straight from the engine, relative motion measured from driving frame 3.
    engine = FommEngine.load(tiny_fomm_checkpoint)
    source = fit_frame(read_image(test_image), (64, 64))
    driving = np.stack([fit_frame(f, (64, 64)) for f in iter_frames(test_video)])
    expected = engine.animate(engine.prepare(source, driving[3]), driving)
    got = np.stack([read_image(p) for p in written])
    assert np.array_equal(got, expected)


def test_best_frame_changes_relative_motion(tiny_fomm_checkpoint, test_image, test_video, tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    animate(request(test_image, test_video, a, tiny_fomm_checkpoint))
    animate(request(test_image, test_video, b, tiny_fomm_checkpoint, best_frame=6))
    fa, fb = read_image(a / "00000.png"), read_image(b / "00000.png")
    assert not np.array_equal(fa, fb)


def test_cancel_leaves_nothing(tiny_fomm_checkpoint, test_image, test_video, tmp_path) -> None:
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        animate(
            request(test_image, test_video, out_dir / "out.mp4", tiny_fomm_checkpoint, batch_size=2),
            should_cancel=lambda: next(calls) >= 2,
        )
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("swap", "message"),
    [
        ("image_as_driving", "is an image"),
        ("video_as_source", "single image"),
    ],
)
def test_wrong_kinds_of_input(tiny_fomm_checkpoint, test_image, test_video, tmp_path, swap, message) -> None:
    src, drv = (test_image, test_image) if swap == "image_as_driving" else (test_video, test_video)
    with pytest.raises(MediaError, match=message):
        animate(request(src, drv, tmp_path / "o.mp4", tiny_fomm_checkpoint))
    assert not (tmp_path / "o.mp4").exists()


def test_best_frame_past_the_end(tiny_fomm_checkpoint, test_image, test_video, tmp_path) -> None:
    with pytest.raises(AnimaticaError, match="past the end"):
        animate(request(test_image, test_video, tmp_path / "o.mp4", tiny_fomm_checkpoint, best_frame=99))
    assert not (tmp_path / "o.mp4").exists()


def test_fomm_without_checkpoint_is_explained(test_image, test_video, tmp_path) -> None:
    req = AnimationRequest(source=test_image, driving=test_video, output=tmp_path / "o.mp4", engine="fomm")
    with pytest.raises(AnimaticaError, match="needs --checkpoint"):
        animate(req)


@pytest.mark.slow
def test_crop_face_and_find_best_frame_with_fomm(tiny_fomm_checkpoint, tmp_path) -> None:
    """The face toolkit feeds the FOMM engine: a real face photo, a driving clip made from it."""
    from animatica.demo import write_demo_driving, write_demo_inputs

    source, _ = write_demo_inputs(tmp_path / "inputs")
    driving = write_demo_driving(tmp_path / "short.mp4", seconds=1.0, fps=10)
    out = tmp_path / "out.mp4"
    result = animate(
        request(
            source, driving, out, tiny_fomm_checkpoint, crop_face=True, find_best_frame=True, batch_size=8
        )
    )
    frames, _, has_audio = read_video(out)
    assert result.frames == len(frames) == 10 and has_audio
    assert 0 <= result.initial_frame < 10
    with pytest.raises(AnimaticaError, match="not both"):
        animate(
            request(
                source, driving, tmp_path / "x.mp4", tiny_fomm_checkpoint, best_frame=1, find_best_frame=True
            )
        )


@pytest.mark.slow
def test_landmarks_segment_warms_up_to_match_a_whole_run(tmp_path, monkeypatch) -> None:
    """A stateful engine's segment starts early, so its first frame joins a whole run without a seam."""
    from PIL import Image

    from animatica.demo import demo_source, write_demo_driving
    from animatica.engines.landmarks import LandmarksEngine

    source = tmp_path / "face.png"
    Image.fromarray(demo_source()).save(source)
    driving = write_demo_driving(tmp_path / "drv.mp4", seconds=2.0)
    animate(AnimationRequest(source=source, driving=driving, output=f"{tmp_path / 'whole'}/"))
    whole = np.stack(list(iter_frames(tmp_path / "whole")))

    def first_frame_gap(warmup: int) -> float:
        monkeypatch.setattr(LandmarksEngine, "warmup_frames", warmup)
        out = tmp_path / f"seg{warmup}"
        animate(
            AnimationRequest(
                source=source, driving=driving, output=f"{out}/", start=30, stop=36, keep_audio=False
            )
        )
        segment = np.stack(list(iter_frames(out)))
        assert len(segment) == 6
        return float(np.abs(segment[0].astype(float) - whole[30].astype(float)).mean())

    settled = first_frame_gap(LandmarksEngine.warmup_frames)
    assert settled < 2.0
    assert first_frame_gap(0) > settled
