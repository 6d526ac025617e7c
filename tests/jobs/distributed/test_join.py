"""Segment planning, lossless segment files and the join, without a broker."""

import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from tests.jobs.distributed.media_inputs import audio_samples, decode_video, face_inputs

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


def test_segment_files_are_lossless(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (37, 51, 3), dtype=np.uint8) for _ in range(7)]  # odd sizes
    assert write_segment(iter(frames), tmp_path / "s.mkv", Fraction(8)) == 7
    back = list(iter_segment(tmp_path / "s.mkv"))
    assert len(back) == 7
    assert all(np.array_equal(a, b) for a, b in zip(frames, back, strict=True))
    assert [p.name for p in tmp_path.iterdir()] == ["s.mkv"]


def test_empty_segment_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        write_segment(iter([]), tmp_path / "s.mkv", Fraction(8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_segments_joined_equal_one_whole_run(tmp_path: Path, tiny_fomm_checkpoint: Path) -> None:
    """Three segments animated apart and joined give the single run's video, frame for frame."""
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
    expected, got = decode_video(whole), decode_video(joined)
    assert len(got) == 20
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))
    assert audio_samples(joined) == audio_samples(whole) > 0


def test_join_refuses_a_wrong_frame_count_and_writes_nothing(tmp_path: Path) -> None:
    frames = [np.full((16, 16, 3), i * 10, dtype=np.uint8) for i in range(6)]
    write_segment(iter(frames[:4]), tmp_path / "a.mkv", Fraction(8))
    write_segment(iter(frames[4:]), tmp_path / "b.mkv", Fraction(8))
    out = tmp_path / "out" / "joined.mp4"
    with pytest.raises(MediaError, match="segment 1"):
        join_segments([tmp_path / "a.mkv", tmp_path / "b.mkv"], out, Fraction(8), None, [4, 3])
    with pytest.raises(MediaError, match="segment 0"):
        join_segments([tmp_path / "a.mkv", tmp_path / "b.mkv"], out, Fraction(8), None, [5, 2])
    assert not out.exists() and list(out.parent.iterdir()) == []
    assert join_segments([tmp_path / "a.mkv", tmp_path / "b.mkv"], out, Fraction(8), None, [4, 2]) == 6
    assert len(decode_video(out)) == 6
