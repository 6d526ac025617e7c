"""The live loop: one frame at a time, always the newest, errors reported once, state freed."""

from __future__ import annotations

import gc
import queue
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from animatica.errors import AnimaticaError
from animatica.face.analyzer import NoFaceError
from animatica.live.session import AnimatedFrame, LiveAnimator, LiveLoop

WAIT = 60  # seconds: only a safety net against a hung test, never reached when the code works


class GatedEngine:
    """An engine whose ``animate`` waits until the test lets it finish: a slow engine made exact.

    Each frame is a constant picture whose value is its number, so the output tells which
    frame was animated.
    """

    name = "gated"
    frame_size: tuple[int, int] | None = None
    warmup_frames = 0

    def __init__(self, gated: bool = True) -> None:
        self.gated = gated
        self.entered: queue.Queue[int] = queue.Queue()
        self.release = threading.Semaphore(0)
        self.prepared: list[int] = []
        self.fail_with: BaseException | None = None
        self.no_face_below = -1  # neutral frames numbered below this have "no face"

    def prepare(self, source: np.ndarray, initial: np.ndarray) -> dict[str, Any]:
        number = int(initial[0, 0, 0])
        if initial is not source and number < self.no_face_below:
            raise NoFaceError("no face in the first driving frame")
        self.prepared.append(number)
        return {"neutral": number}

    def animate(self, state: dict[str, Any], driving: np.ndarray) -> np.ndarray:
        number = int(driving[0, 0, 0, 0])
        self.entered.put(number)
        if self.gated:
            assert self.release.acquire(timeout=WAIT)
        if self.fail_with is not None:
            raise self.fail_with
        return driving.copy()


def frame(number: int, side: int = 64) -> np.ndarray:
    return np.full((side, side, 3), number, dtype=np.uint8)


class Boxed:
    """A frame in a box that can be watched with a weak reference (arrays cannot)."""

    def __init__(self, number: int) -> None:
        self.array = frame(number)


def collect(loop_frames: list[AnimatedFrame]) -> Any:
    return loop_frames.append


def test_a_slow_engine_animates_only_the_newest_frame_and_nothing_queues() -> None:
    engine = GatedEngine()
    shown: list[AnimatedFrame] = []
    animator = LiveAnimator(engine, frame(200), 64)
    boxes: list[weakref.ref[Boxed]] = []
    with LiveLoop(animator, shown.append, decode=lambda box: box.array) as loop:
        loop.submit(Boxed(0), 0, 0.0)
        assert engine.entered.get(timeout=WAIT) == 0  # the engine is busy with frame 0
        for n in range(1, 51):  # the camera goes on while the engine works
            box = Boxed(n)
            boxes.append(weakref.ref(box))
            loop.submit(box, n, float(n))
            del box
            assert loop.pending  # one frame waits, never more
        assert loop.dropped == 49
        gc.collect()
        alive = [n for n, ref in enumerate(boxes, start=1) if ref() is not None]
        assert alive == [50]  # the replaced frames are gone from memory, not queued
        engine.release.release()
        assert engine.entered.get(timeout=WAIT) == 50  # next, the newest frame and only it
        engine.release.release()
        assert loop.wait_idle(timeout=WAIT)
    assert [f.seq for f in shown] == [0, 50]
    assert [int(f.image[0, 0, 0]) for f in shown] == [0, 50]
    assert [f.captured_ms for f in shown] == [0.0, 50.0]
    assert all(f.ready_ms >= f.captured_ms and f.engine_ms >= 0 for f in shown)
    assert engine.entered.empty()
    assert animator._state is None  # closing freed the engine's state


def test_the_first_frame_becomes_neutral_and_a_request_sets_it_again() -> None:
    engine = GatedEngine(gated=False)
    animator = LiveAnimator(engine, frame(200), 64)
    assert engine.prepared == [200]  # the portrait's face is checked when the session opens
    animator.animate(frame(3))
    animator.animate(frame(4))
    assert engine.prepared == [200, 3]
    animator.request_neutral()
    animator.animate(frame(5))
    assert engine.prepared == [200, 3, 5]


def test_warming_up_animates_the_portrait_and_leaves_the_neutral_pose_to_the_camera() -> None:
    engine = GatedEngine(gated=False)
    animator = LiveAnimator(engine, frame(200), 64)
    animator.warm_up()
    assert engine.entered.get_nowait() == 200
    animator.animate(frame(3))
    assert engine.prepared == [200, 3]


def test_no_face_in_the_camera_shows_the_portrait_still_until_one_appears() -> None:
    engine = GatedEngine(gated=False)
    engine.no_face_below = 10
    animator = LiveAnimator(engine, frame(200), 64)
    still = animator.animate(frame(1))
    assert animator.waiting_for_face and int(still[0, 0, 0]) == 200 and engine.entered.empty()
    animator.animate(frame(2))
    assert animator.waiting_for_face
    out = animator.animate(frame(11))
    assert not animator.waiting_for_face and int(out[0, 0, 0]) == 11
    assert engine.prepared == [200, 11]


def test_output_is_at_the_session_size_whatever_the_engine_works_at() -> None:
    engine = GatedEngine(gated=False)
    engine.frame_size = (32, 32)
    animator = LiveAnimator(engine, frame(200, side=100), 96)
    assert animator.source.shape == (32, 32, 3)
    assert animator.animate(np.full((90, 160, 3), 7, np.uint8)).shape == (96, 96, 3)


def test_bad_session_arguments_are_refused() -> None:
    with pytest.raises(AnimaticaError, match="between"):
        LiveAnimator(GatedEngine(), frame(1), 8)
    with pytest.raises(AnimaticaError, match="fit"):
        LiveAnimator(GatedEngine(), frame(1), 64, fit="zoom")  # type: ignore[arg-type]
    with pytest.raises(AnimaticaError, match="uint8"):
        LiveAnimator(GatedEngine(gated=False), frame(1), 64).animate(np.zeros((4, 4), np.uint8))


def test_an_engine_error_is_reported_once_and_ends_the_loop() -> None:
    engine = GatedEngine(gated=False)
    engine.fail_with = AnimaticaError("the engine broke")
    errors: list[AnimaticaError] = []
    loop = LiveLoop(LiveAnimator(engine, frame(200), 64), lambda f: None, on_error=errors.append).start()
    loop.submit(frame(1), 1, 0.0)
    assert loop.wait_idle(timeout=WAIT)
    loop.submit(frame(2), 2, 0.0)  # ignored: the loop has ended
    loop.close()  # the error went to on_error: close does not raise it again
    assert [str(e) for e in errors] == ["the engine broke"]
    assert loop.error is errors[0] and not loop.running and loop.frames == 0
    assert loop.animator._state is None


def test_without_on_error_close_raises_and_a_bug_is_wrapped() -> None:
    engine = GatedEngine(gated=False)
    engine.fail_with = ZeroDivisionError("boom")
    loop = LiveLoop(LiveAnimator(engine, frame(200), 64), lambda f: None).start()
    loop.submit(frame(1), 1, 0.0)
    assert loop.wait_idle(timeout=WAIT)
    with pytest.raises(AnimaticaError, match="internal error \\(ZeroDivisionError\\)") as caught:
        loop.close()
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


def test_a_portrait_without_a_face_is_refused_when_the_session_opens() -> None:
    class Faceless(GatedEngine):
        def prepare(self, source: np.ndarray, initial: np.ndarray) -> dict[str, Any]:
            raise NoFaceError("No face was found in the source image.")

    with pytest.raises(NoFaceError, match="source image"):
        LiveAnimator(Faceless(), frame(1), 64)


@pytest.fixture(scope="module")
def talking(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list[np.ndarray]]:
    from animatica.demo import demo_source, write_demo_driving
    from animatica.media.reader import iter_frames

    clip = write_demo_driving(
        Path(tmp_path_factory.mktemp("live")) / "talking.mp4", seconds=1.0, fps=8, size=256
    )
    return demo_source(), list(iter_frames(clip))


@pytest.mark.slow  # the real engine: loading dlib's models and the portrait's thorough face search
def test_landmarks_engine_live_at_256(talking: tuple[np.ndarray, list[np.ndarray]]) -> None:
    from animatica.engines import load_engine

    portrait, frames = talking
    shown: list[AnimatedFrame] = []
    animator = LiveAnimator(load_engine("landmarks"), portrait, 256)
    with LiveLoop(animator, shown.append) as loop:
        for seq, camera in enumerate(frames):
            loop.submit(camera, seq, float(seq))
            assert loop.wait_idle(timeout=WAIT)  # one at a time here: every frame is animated
    assert [f.seq for f in shown] == list(range(len(frames))) and loop.dropped == 0
    assert all(f.image.shape == (256, 256, 3) and f.image.dtype == np.uint8 for f in shown)
    first = shown[0].image.astype(np.float64)
    assert np.abs(first - animator.source).mean() < 3  # the neutral frame leaves the portrait as it is
    moved = max(np.abs(f.image.astype(np.float64) - first).mean() for f in shown[1:])
    assert moved > 1  # the camera's head motion moves the portrait's head
    assert animator._state is None
