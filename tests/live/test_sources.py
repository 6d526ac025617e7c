"""Frames for the command line's live loop: a file paced like a camera, a local camera."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from animatica.errors import AnimaticaError
from animatica.live.sources import Camera, PacedFile, SourceFrame, paced, play
from animatica.live.stats import LiveStats


class Clock:
    """Milliseconds that pass only when someone sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds * 1000.0


def numbered(count: int) -> list[np.ndarray]:
    return [np.full((8, 8, 3), i, np.uint8) for i in range(count)]


def test_frames_wait_for_their_due_time_and_carry_it() -> None:
    clock = Clock()
    out = list(paced(numbered(4), 25.0, clock=clock, sleep=clock.sleep))
    assert [f.seq for f in out] == [0, 1, 2, 3]
    assert [f.captured_ms for f in out] == [1000.0, 1040.0, 1080.0, 1120.0]
    assert clock.slept == pytest.approx([0.04, 0.04, 0.04])


def test_a_late_reader_skips_to_the_newest_due_frame() -> None:
    clock = Clock()
    skipped: list[int] = []

    def slow_frames() -> Iterator[np.ndarray]:
        for i, image in enumerate(numbered(10)):
            if i == 2:
                clock.now += 130.0  # the reader stalls until 1170 ms: frames 2, 3 and 4 are due by then
            yield image

    out = list(paced(slow_frames(), 25.0, clock=clock, sleep=clock.sleep, on_skip=lambda: skipped.append(1)))
    seqs = [f.seq for f in out]
    assert seqs[:3] == [0, 1, 4] and seqs[-1] == 9  # 2 and 3 were stale, 4 is the newest due
    assert len(skipped) == 2 and len(out) + len(skipped) == 10
    assert out[2].captured_ms == 1000.0 + 4 * 40.0  # delay is measured from the frame's own due time


def test_paced_file_uses_the_file_rate(test_video: Path) -> None:
    clock = Clock()
    source = PacedFile(test_video, clock=clock, sleep=clock.sleep)
    assert source.fps == 25.0
    frames = list(source)
    source.close()
    assert len(frames) == 12 and frames[-1].captured_ms == 1000.0 + 11 * 40.0
    assert frames[0].image.shape == (96, 80, 3) and source.dropped == 0


def test_a_photo_is_not_a_driving_video(test_image: Path) -> None:
    with pytest.raises(AnimaticaError, match="video"):
        PacedFile(test_image)


def test_a_missing_camera_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AnimaticaError, match="no camera /dev/video3; no camera is connected"):
        Camera(3, devices=tmp_path)
    (tmp_path / "video0").write_bytes(b"")  # not a video4linux device
    with pytest.raises(AnimaticaError, match="/dev/video3; cameras here: /dev/video0"):
        Camera(3, devices=tmp_path)
    with pytest.raises(AnimaticaError, match="could not be opened"):
        Camera(0, devices=tmp_path)


class Echo:
    name = "echo"
    frame_size = None
    warmup_frames = 0

    def prepare(self, source: np.ndarray, initial: np.ndarray) -> None:
        return None

    def animate(self, state: None, driving: np.ndarray) -> np.ndarray:
        return driving.copy()


class ListSource:
    def __init__(self, frames: list[SourceFrame]) -> None:
        self.frames, self.fps, self.dropped, self.closed = frames, 25.0, 2, False

    def __iter__(self) -> Iterator[SourceFrame]:
        return iter(self.frames)

    def close(self) -> None:
        self.closed = True


def test_play_animates_the_last_frame_and_counts_the_source_drops() -> None:
    from animatica.live.session import LiveAnimator, now_ms

    source = ListSource([SourceFrame(np.full((64, 64, 3), i, np.uint8), i, now_ms()) for i in range(5)])
    stats = LiveStats("echo")
    shown: list[int] = []
    play(
        source,
        LiveAnimator(Echo(), np.zeros((64, 64, 3), np.uint8), 64),
        stats,
        on_frame=lambda f: shown.append(f.seq),
    )
    summary = stats.summary()
    assert shown[-1] == 4  # the last frame offered is animated before the session ends
    assert summary["frames"] == len(shown) and summary["dropped"] == 2 + (5 - len(shown))
    assert source.closed
