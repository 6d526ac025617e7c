"""Segment planning, encoded segment files and the join, without a broker."""

import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from tests.jobs.distributed.media_inputs import (
    assert_looks_the_same,
    decode_video,
    face_inputs,
    frame_times,
    psnr,
    sound,
)

from animatica.errors import AnimaticaError, MediaError
from animatica.jobs.join import join_segments
from animatica.jobs.segment_file import iter_segment, write_segment
from animatica.jobs.segments import frames_per_segment, plan_segments


def test_segments_tile_the_video_exactly() -> None:
    parts = plan_segments(101, Fraction(30000, 1001), 1.0)
    assert [p.index for p in parts] == list(range(len(parts)))
    assert parts[0].start == 0 and parts[-1].stop == 101
    assert all(a.stop == b.start for a, b in itertools.pairwise(parts))
    assert {p.frames for p in parts[:-1]} == {30}
    assert sum(p.frames or 0 for p in parts) == 101


def test_estimated_length_lets_the_last_segment_run_to_the_end() -> None:
    parts = plan_segments(50, Fraction(25), 1.0, exact=False)
    assert parts[-1].stop is None and parts[-1].start == 25


def test_bad_plans_are_refused() -> None:
    with pytest.raises(AnimaticaError):
        plan_segments(0, Fraction(25), 5.0)
    with pytest.raises(AnimaticaError):
        frames_per_segment(Fraction(25), 0)
    assert frames_per_segment(None, 2.0) == 50


def _smooth_frames(count: int, height: int = 36, width: int = 50) -> list[np.ndarray]:
    """Gradients that move from frame to frame: content H.264 keeps well, like an animated face."""
    y, x = np.mgrid[0:height, 0:width]
    return [
        np.stack([(x * 4 + 9 * i) % 256, (y * 5 + 7 * i) % 256, ((x + y) * 2 + 3 * i) % 256], axis=-1).astype(
            np.uint8
        )
        for i in range(count)
    ]


def test_segment_files_are_encoded_like_the_result_from_a_keyframe(tmp_path: Path) -> None:
    """A segment is encoded once, by its worker, with the result's encoder: the join copies it."""
    frames = _smooth_frames(7, 37, 51)  # odd sizes: padded by one line, as the result is
    assert write_segment(iter(frames), tmp_path / "s.mkv", Fraction(8)) == 7
    back = list(iter_segment(tmp_path / "s.mkv"))
    assert len(back) == 7
    assert all(psnr(a, b[:37, :51]) > 30 for a, b in zip(frames, back, strict=True))
    with av.open(str(tmp_path / "s.mkv")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert next(p for p in container.demux(stream) if p.size).is_keyframe
    assert [p.name for p in tmp_path.iterdir()] == ["s.mkv"]


def test_empty_segment_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        write_segment(iter([]), tmp_path / "s.mkv", Fraction(8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_segments_joined_look_like_one_whole_run(tmp_path: Path, tiny_fomm_checkpoint: Path) -> None:
    """Three segments animated apart, encoded apart and joined show the single run's video.

    Not bit for bit: each segment's encoder starts at its seam with a keyframe and its own rate
    control, where the single run encodes all frames in one pass (see ``assert_looks_the_same``).
    """
    from animatica.media.reader import iter_frames
    from animatica.pipeline import AnimationRequest, animate

    source, driving = face_inputs(tmp_path, frames=20)
    whole = tmp_path / "whole.mp4"
    engine = {
        "engine": "fomm",
        "checkpoint": str(tiny_fomm_checkpoint),
        "batch_size": 3,
    }  # batches cross seams
    animate(AnimationRequest(source, driving, whole, **engine))
    parts = []
    for part in plan_segments(20, Fraction(8), 1.0):  # 8 + 8 + 4 frames
        folder = tmp_path / f"part{part.index}"
        animate(
            AnimationRequest(
                source,
                driving,
                Path(f"{folder}/"),
                start=part.start,
                stop=part.stop,
                keep_audio=False,
                **engine,
            )
        )
        packed = tmp_path / f"{part.index}.mkv"
        write_segment(iter_frames(folder), packed, Fraction(8))
        parts.append(packed)
    joined = tmp_path / "joined.mp4"
    assert join_segments(parts, joined, Fraction(8), driving, [8, 8, 4]) == 20
    assert_looks_the_same(whole, joined)


def _flat_segments(folder: Path, sizes: list[int], fps: Fraction) -> list[Path]:
    """Segments of flat frames whose colour encodes their frame number across the whole video."""
    parts, first = [], 0
    for index, size in enumerate(sizes):
        frames = [np.full((16, 16, 3), (first + i) * 10, dtype=np.uint8) for i in range(size)]
        parts.append(folder / f"{index:05d}.mkv")
        write_segment(iter(frames), parts[-1], fps)
        first += size
    return parts


def test_join_refuses_a_wrong_frame_count_and_writes_nothing(tmp_path: Path) -> None:
    a, b = _flat_segments(tmp_path, [4, 2], Fraction(8))
    out = tmp_path / "out" / "joined.mp4"
    out.parent.mkdir()
    with pytest.raises(MediaError, match="segment 1"):
        join_segments([a, b], out, Fraction(8), None, [4, 3])
    with pytest.raises(MediaError, match="segment 0"):
        join_segments([a, b], out, Fraction(8), None, [5, 2])
    assert not out.exists() and list(out.parent.iterdir()) == []
    assert join_segments([a, b], out, Fraction(8), None, [4, 2]) == 6
    assert len(decode_video(out)) == 6


def test_seams_keep_every_frame_in_place_with_exact_times(tmp_path: Path) -> None:
    """Frame i of the result is frame i of the video, shown at exactly i/fps, across every seam,
    and each seam starts with a keyframe, for a rate that is no whole number of milliseconds."""
    fps = Fraction(30000, 1001)
    sizes = [9, 1, 9, 5]  # a one-frame segment too
    parts = _flat_segments(tmp_path, sizes, fps)
    out = tmp_path / "joined.mp4"
    assert join_segments(parts, out, fps, None, sizes) == 24
    frames = decode_video(out)
    assert [round(float(f.mean()) / 10) for f in frames] == list(range(24))
    assert frame_times(out) == [i / fps for i in range(24)]
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.duration is not None and stream.time_base is not None
        assert stream.duration * stream.time_base == 24 / fps  # plays for exactly 24 frames
        keys = {round(p.pts * p.time_base * fps) for p in container.demux(stream) if p.is_keyframe}
    assert {0, 9, 10, 19} <= keys


def test_join_carries_the_driving_sound_once_over_the_whole_video(tmp_path: Path) -> None:
    _source, driving = face_inputs(tmp_path, frames=24, size=32)  # 3 s of tone at 8 fps
    parts = _flat_segments(tmp_path, [8, 8, 4], Fraction(8))  # 2.5 s of video
    out = tmp_path / "joined.mp4"
    assert join_segments(parts, out, Fraction(8), driving, [8, 8, 4]) == 20
    heard, original = sound(out), sound(driving)
    assert 20 * 44100 // 8 <= heard.shape[1] <= 20 * 44100 // 8 + 1024  # cut after the last frame
    assert np.array_equal(heard, original[:, : heard.shape[1]])  # copied, so not changed at all


@pytest.mark.parametrize("damage", ["missing", "cut short", "not a video", "other size"])
def test_a_damaged_segment_fails_the_join_by_name_and_leaves_nothing(tmp_path: Path, damage: str) -> None:
    parts = _flat_segments(tmp_path, [8, 8, 8], Fraction(8))
    bad = parts[1]
    if damage == "missing":
        bad.unlink()
    elif damage == "cut short":
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size * 9 // 10])  # its header still says 8 frames
    elif damage == "not a video":
        bad.write_bytes(b"<html>Service Unavailable</html>" * 40)
    else:
        write_segment(iter([np.zeros((32, 16, 3), np.uint8)] * 8), bad, Fraction(8))
    out = tmp_path / "out" / "joined.mp4"
    out.parent.mkdir()
    with pytest.raises(MediaError, match="segment 1") as caught:  # its count unknown: found by looking
        join_segments(parts, out, Fraction(8), None, [8, None, 8])
    assert "again" in str(caught.value)  # it says what fixes it
    assert list(out.parent.iterdir()) == []
