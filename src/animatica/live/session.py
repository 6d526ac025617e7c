"""Animating a portrait frame by frame as the frames arrive: the core of every live session.

`LiveAnimator` turns one camera frame into one animated frame with a loaded engine, at the
session's size. The first frame it sees becomes the neutral pose (the frame relative motion is
measured from), and so does the next frame after `request_neutral`: a user who moved away from
the camera sets it again rather than restarting. Until a face is found in a neutral frame the
portrait is shown still, which is what someone stepping in front of their camera expects.

`LiveLoop` runs an animator on a thread of its own, fed through a `LatestSlot`: whoever
captures frames submits them as fast as they come, and the engine takes only the newest one
each time it is free. Frames it had no time for are dropped and counted, never queued, so the
delay stays one engine frame however slow the engine is, and memory holds one waiting frame.

A portrait without a usable face is refused when the animator is made, before any frame. A
failure during the session (a frame that cannot be decoded, an engine's bug) ends the loop and
reaches the caller once, as an `AnimaticaError`: through ``on_error`` as it happens, or raised
by `close`; the loop never dies silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from animatica.engines.base import Engine
from animatica.errors import AnimaticaError
from animatica.face.analyzer import NoFaceError
from animatica.live.slot import LatestSlot
from animatica.media.fit import FIT_MODES, FitMode, fit_frame

log = logging.getLogger(__name__)

MIN_SIZE, MAX_SIZE = 64, 1024


def now_ms() -> float:
    """The clock a live session measures delays on, in milliseconds (monotonic, arbitrary origin)."""
    return time.perf_counter() * 1000.0


@dataclass(frozen=True)
class AnimatedFrame:
    seq: int  # of the camera frame it animates
    captured_ms: float  # that frame's capture (or due) time, on the submitter's clock
    ready_ms: float  # when the animated frame was ready, on the loop's clock
    image: np.ndarray  # (size, size, 3) uint8
    engine_ms: float  # time spent on it on the loop's thread: decoding, fitting, animating


class LiveAnimator:
    """One loaded engine animating one portrait, a frame at a time.

    The portrait is fitted once to the frame size the engine works at (the engine's own, or
    ``size`` x ``size`` for an engine that takes any size), and so is every camera frame;
    the result is ``size`` x ``size``. The portrait's face is looked for right away
    (``engine.prepare`` with the portrait as its own neutral pose), so a portrait without a
    usable face is refused when the session is opened, not when the first frame arrives.
    """

    def __init__(self, engine: Engine, source: np.ndarray, size: int, fit: FitMode = "crop") -> None:
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise AnimaticaError(
                f"the live size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}"
            )
        if fit not in FIT_MODES:
            raise AnimaticaError(f"the fit must be one of {', '.join(FIT_MODES)}, not {fit!r}")
        self.engine = engine
        self.size = size
        self.fit: FitMode = fit
        self.frame_size: tuple[int, int] = engine.frame_size or (size, size)
        self.source = fit_frame(np.ascontiguousarray(source), self.frame_size, fit)
        self._state: Any = engine.prepare(self.source, self.source)
        self._neutral_pending = True
        self.waiting_for_face = False  # True while the neutral frame has no face: the portrait is shown still
        self._still: np.ndarray | None = None
        self._closed = False

    def warm_up(self) -> None:
        """Animate the portrait once, unseen, so that what an engine does on first use (kernels,
        caches; up to seconds on a busy machine) is done before the first camera frame waits on it.
        The neutral pose still comes from that first frame."""
        if self._state is not None:
            self.engine.animate(self._state, self.source[None])

    def request_neutral(self) -> None:
        """Take the next frame as the neutral pose (safe to call from any thread)."""
        self._neutral_pending = True

    def set_neutral(self, frame: np.ndarray) -> None:
        """Measure motion from ``frame`` (any size; fitted like every frame) from now on."""
        self._set_neutral(self._fitted(frame))

    def animate(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` (``(H, W, 3)`` uint8) animated: a ``(size, size, 3)`` uint8 image."""
        if self._closed:
            raise AnimaticaError("this live animation was closed")
        fitted = self._fitted(frame)
        if self._neutral_pending:
            try:
                self._set_neutral(fitted)
            except NoFaceError:
                # The portrait's face was found when the session opened, so this is the camera's:
                # nobody is in front of it yet. Show the portrait still and try the next frame.
                self.waiting_for_face = True
                return self._still_frame()
        out = self.engine.animate(self._state, fitted[None])[0]
        return self._at_size(out)

    def close(self) -> None:
        """Let go of the engine's state (the engine itself may serve other sessions)."""
        self._closed = True
        self._state = None
        self._still = None

    def _set_neutral(self, fitted: np.ndarray) -> None:
        self._neutral_pending = False  # before prepare: a request arriving meanwhile is kept
        try:
            self._state = self.engine.prepare(self.source, fitted)
        except BaseException:
            self._neutral_pending = True
            raise
        self.waiting_for_face = False

    def _fitted(self, frame: np.ndarray) -> np.ndarray:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise AnimaticaError(f"a camera frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        return fit_frame(frame, self.frame_size, self.fit)

    def _at_size(self, image: np.ndarray) -> np.ndarray:
        if image.shape[:2] == (self.size, self.size):
            return image
        return fit_frame(np.ascontiguousarray(image), (self.size, self.size), self.fit)

    def _still_frame(self) -> np.ndarray:
        if self._still is None:
            self._still = self._at_size(self.source)
        return self._still.copy()


class LiveLoop:
    """A `LiveAnimator` on a background thread that always animates the newest submitted frame.

    ``on_frame`` and ``on_error`` are called on the loop's thread. Use as a context manager, or
    `start` and `close`.
    """

    def __init__(
        self,
        animator: LiveAnimator,
        on_frame: Callable[[AnimatedFrame], None],
        on_error: Callable[[AnimaticaError], None] | None = None,
        clock: Callable[[], float] = now_ms,
        decode: Callable[[Any], np.ndarray] | None = None,
    ) -> None:
        self.animator = animator
        self._on_frame = on_frame
        self._on_error = on_error
        self._clock = clock
        self._decode = decode
        self._slot: LatestSlot[tuple[Any, int, float]] = LatestSlot()
        self._thread = threading.Thread(target=self._run, name="animatica-live", daemon=True)
        self._progress = threading.Condition()
        self._submitted = 0
        self._ended = False
        self.error: AnimaticaError | None = None
        self.frames = 0  # animated frames handed to on_frame

    def start(self) -> LiveLoop:
        self._thread.start()
        return self

    def __enter__(self) -> LiveLoop:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close(raise_error=exc_info[0] is None)

    @property
    def dropped(self) -> int:
        """Frames replaced by a newer one before the engine took them."""
        return self._slot.dropped

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def pending(self) -> bool:
        """Whether a frame waits for the engine (never more than one does)."""
        return self._slot.pending

    def submit(self, frame: Any, seq: int, captured_ms: float) -> bool:
        """Offer a camera frame; True if it replaced one the engine never took (that one is dropped).

        ``frame`` is an ``(H, W, 3)`` uint8 array, or whatever ``decode`` turns into one (the
        compressed bytes off the network, decoded on the loop's thread so that only frames the
        engine takes are ever decoded). Never blocks; ignored once the loop has ended.
        """
        with self._progress:
            self._submitted += 1
        return self._slot.put((frame, seq, captured_ms))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted frame was animated or dropped (or the loop ended); False on timeout.

        For a caller whose frames have run out (the end of a file) and who wants the last one animated.
        """
        with self._progress:
            return self._progress.wait_for(
                lambda: self._ended or self.frames + self._slot.dropped >= self._submitted,
                timeout,
            )

    def request_neutral(self) -> None:
        """The next frame the engine takes becomes the neutral pose."""
        self.animator.request_neutral()

    def close(self, timeout: float | None = None, *, raise_error: bool = True) -> None:
        """Stop, wait for the frame in progress, free the engine's state.

        Raises the engine's error if there was one and no ``on_error`` took it.
        """
        self._slot.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if not self._thread.is_alive() and self._thread.ident is None:  # never started
            self.animator.close()
        if raise_error and self.error is not None and self._on_error is None:
            raise self.error

    def _run(self) -> None:
        try:
            while (item := self._slot.take()) is not None:
                frame, seq, captured_ms = item
                del item
                started = self._clock()
                if self._decode is not None:
                    frame = self._decode(frame)
                image = self.animator.animate(frame)
                ready = self._clock()
                del frame
                self._on_frame(AnimatedFrame(seq, captured_ms, ready, image, ready - started))
                with self._progress:
                    self.frames += 1
                    self._progress.notify_all()
        except AnimaticaError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug: keep the traceback in the log, give the caller one clear error
            log.exception("the live loop failed")
            error = AnimaticaError(f"the live animation stopped on an internal error ({type(exc).__name__})")
            error.__cause__ = exc
            self._fail(error)
        finally:
            self._slot.close()  # later submits are ignored, not queued
            self.animator.close()  # the loop has ended either way: free the state now
            with self._progress:
                self._ended = True
                self._progress.notify_all()

    def _fail(self, error: AnimaticaError) -> None:
        self.error = error
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                log.exception("the live loop's error callback failed")
