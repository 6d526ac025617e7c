"""One animation from input files to an output file.

probe and validate the inputs → load the engine → read the source and the initial driving frame →
``engine.prepare`` once → stream the driving video through ``engine.animate`` in batches → encode.
Frames are never all in memory: a decoder, one batch and an encoder are, whatever the video's
length. The output appears only when complete (the writer renames a temporary file at the end).

With ``best_frame`` N, relative motion is measured from driving frame N instead of frame 0: this is
what the reference's forward-and-backward animation from frame N computes, since each output frame
depends only on its own driving frame, the source and the initial frame.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from animatica.engines import choose_engine, load_engine
from animatica.engines.base import Engine
from animatica.errors import AnimaticaError
from animatica.media.fit import fit_frame
from animatica.media.probe import MediaInfo, probe, require_image, require_video
from animatica.media.reader import FrameLimitExceeded, iter_chunks, iter_frames, read_image
from animatica.media.writer import check_writable, open_writer, output_kind


class Cancelled(AnimaticaError):
    """The caller asked to stop; nothing was written."""


@dataclass
class AnimationRequest:
    source: Path
    driving: Path
    # An .mp4 file, or a folder for PNG frames. Give a path ending in "/" as a string: a Path drops
    # the slash, and "x.frames/" would then read as a video named x.frames.
    output: Path | str
    engine: str = "auto"  # "fomm" | "landmarks" | "auto" (fomm when a checkpoint is given)
    checkpoint: str | None = None
    config: str | None = None
    relative: bool = True
    adapt_scale: bool = False
    best_frame: int | None = None
    find_best_frame: bool = False
    crop_face: bool = False
    fit: str = "crop"
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 4
    engine_options: dict[str, Any] = field(default_factory=dict)  # engine-specific extras
    # A segment of the driving video: frames [start, stop) only. Relative motion is still measured
    # from the whole video's initial frame, so segments joined in order equal one whole run.
    start: int = 0
    stop: int | None = None
    keep_audio: bool = True  # segments are written silent; the join adds the sound once
    # The most driving frames this animation may decode (a service plan's length limit at the
    # clip's rate). Held on the frames actually decoded, since a header's length can lie.
    max_frames: int | None = None


@dataclass
class Progress:
    stage: str  # "load" | "prepare" | "animate" | "done"
    done: int
    total: int | None
    fps: float
    eta_seconds: float | None


@dataclass
class AnimationResult:
    output: Path
    frames: int
    fps: float  # the output video's frame rate (the driving video's)
    seconds: float  # wall time of the whole animation
    has_audio: bool
    initial_frame: int = 0
    notes: list[str] = field(default_factory=list)


def _engine_options(request: AnimationRequest, name: str) -> dict[str, Any]:
    options: dict[str, Any] = dict(request.engine_options)
    if name == "fomm":
        options.update(
            device=request.device,
            checkpoint=request.checkpoint,
            config=request.config,
            precision=request.precision,
            relative=request.relative,
            adapt_scale=request.adapt_scale,
        )
    else:
        options.setdefault("source_name", Path(request.source).name)
    return options


def _face_track(request: AnimationRequest, info: MediaInfo) -> np.ndarray | None:
    """Smoothed face crop boxes for every driving frame (one pass over the whole video), if asked."""
    if not request.crop_face:
        return None
    from animatica.face.crop import track_boxes

    return track_boxes(_driving(request, info), what=f"the video {info.path.name}")


def _driving(request: AnimationRequest, info: MediaInfo, start: int = 0) -> Iterator[np.ndarray]:
    """The driving frames from ``start`` on; every pass over the video comes through here, under its limit."""
    return iter_frames(info.path, start, max_frames=request.max_frames)


def _frames(
    request: AnimationRequest, engine: Engine, info: MediaInfo, boxes: np.ndarray | None, start: int = 0
) -> Iterator[np.ndarray]:
    """Driving frames from ``start`` on, as the engine wants them: face-cropped if asked, fitted."""
    frames: Iterator[np.ndarray] = _driving(request, info, start)  # seeks: a segment costs O(its length)
    if boxes is not None:
        from animatica.face.crop import crop_with_boxes

        frames = crop_with_boxes(frames, boxes[start:], engine.frame_size)
    if engine.frame_size is not None:
        frames = (fit_frame(f, engine.frame_size, request.fit) for f in frames)  # type: ignore[arg-type]
    return frames


def _source(request: AnimationRequest, engine: Engine) -> np.ndarray:
    image = read_image(request.source)
    if request.crop_face:
        from animatica.face.crop import crop_image

        image = crop_image(image, engine.frame_size)
    if engine.frame_size is not None:
        image = fit_frame(image, engine.frame_size, request.fit)  # type: ignore[arg-type]
    return image


def _frame_at(frames: Iterator[np.ndarray], path: Path, index: int) -> np.ndarray:
    frame = next(frames, None)
    if frame is None:
        raise AnimaticaError(f"--best-frame {index} is past the end of {path.name}")
    return frame


def _initial_index(request: AnimationRequest, info: MediaInfo) -> int:
    if request.best_frame is not None and request.find_best_frame:
        raise AnimaticaError("use either --best-frame N or --find-best-frame, not both")
    if request.best_frame is not None:
        if request.best_frame < 0:
            raise AnimaticaError("--best-frame must be 0 or more")
        return request.best_frame
    if request.find_best_frame:
        from animatica.face.best_frame import find_best_frame

        # Normalised landmarks do not depend on framing, so the full-resolution inputs serve best.
        return find_best_frame(read_image(request.source), _driving(request, info))
    return 0


def _too_long(request: AnimationRequest, info: MediaInfo) -> AnimaticaError:
    """The failure of a video longer than ``max_frames``, without the server's paths in it."""
    limit = request.max_frames or 0
    about = f" (about {limit / info.fps:.1f} s at its frame rate)" if info.fps else ""
    return AnimaticaError(
        f"The driving video has more than {limit:,} frames{about}, more than this animation may use; "
        "trim the clip and try again."
    )


def animate(
    request: AnimationRequest,
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> AnimationResult:
    """Run one animation; raises ``AnimaticaError`` (``Cancelled`` when stopped) and leaves no output then."""
    if request.max_frames is not None and request.max_frames < 1:
        raise AnimaticaError(f"max_frames must be at least 1, got {request.max_frames}")
    require_image(probe(Path(request.source)))
    driving_info = require_video(probe(Path(request.driving)))
    limit = request.max_frames
    if limit is not None and driving_info.frame_count_exact and (driving_info.frame_count or 0) > limit:
        raise _too_long(request, driving_info)  # the container's index says so: refuse before any work
    try:
        return _animate(request, driving_info, on_progress, should_cancel)
    except FrameLimitExceeded as error:  # only raised under request.max_frames
        raise _too_long(request, driving_info) from error


def _animate(
    request: AnimationRequest,
    driving_info: MediaInfo,
    on_progress: Callable[[Progress], None] | None,
    should_cancel: Callable[[], bool] | None,
) -> AnimationResult:
    started = time.perf_counter()
    report = on_progress or (lambda p: None)
    cancelled = should_cancel or (lambda: False)

    output = request.output
    check_writable(output)
    if request.batch_size < 1:
        raise AnimaticaError("--batch-size must be at least 1")
    if request.start < 0 or (request.stop is not None and request.stop < request.start):
        raise AnimaticaError(f"bad frame range [{request.start}, {request.stop})")

    report(Progress("load", 0, driving_info.frame_count, 0.0, None))
    name = choose_engine(request.engine, request.checkpoint)
    engine = load_engine(name, **_engine_options(request, name))
    source = _source(request, engine)
    initial_index = _initial_index(request, driving_info)
    boxes = _face_track(request, driving_info)  # once, shared by both passes below
    initial = _frame_at(
        _frames(request, engine, driving_info, boxes, initial_index), Path(request.driving), initial_index
    )

    report(Progress("prepare", 0, driving_info.frame_count, 0.0, None))
    state = engine.prepare(source, initial)
    fps = driving_info.frame_rate or Fraction(25)  # exact, e.g. 30000/1001; frame folders get 25
    total = driving_info.frame_count
    if total is not None:
        total = max(0, min(total, request.stop if request.stop is not None else total) - request.start)
    done = 0
    animate_started = time.perf_counter()
    audio = Path(request.driving) if driving_info.has_audio and request.keep_audio else None
    # An engine that carries state from frame to frame (tracking, smoothing) starts a segment some
    # frames early and drops them, so that it reaches the segment's first frame as a whole run does.
    warmup = min(request.start, getattr(engine, "warmup_frames", 0))
    first = request.start - warmup
    frames = _frames(request, engine, driving_info, boxes, first)
    if request.stop is not None:
        frames = islice(frames, request.stop - first)
    with open_writer(output, fps, audio_from=audio) as writer:
        for chunk in iter_chunks(frames, request.batch_size):
            if cancelled():
                raise Cancelled("the animation was canceled")
            animated = engine.animate(state, chunk)
            if warmup:
                dropped = min(warmup, len(animated))
                animated, warmup = animated[dropped:], warmup - dropped
                if not len(animated):
                    continue
            writer.write_chunk(animated)
            done += len(animated)
            elapsed = time.perf_counter() - animate_started
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = (total - done) / rate if total and rate > 0 and total >= done else None
            report(Progress("animate", done, total, rate, eta))
        if done == 0:
            raise AnimaticaError(f"{Path(request.driving).name} has no frames to animate")

    notes = list(getattr(state, "face_notes", []))  # which detector found a face the quick scan missed
    missed = getattr(state, "frames_without_face", 0)
    if missed:
        notes.append(f"{missed} driving frames had no face; the last pose was held for them")
    seconds = time.perf_counter() - started
    report(Progress("done", done, done, done / max(seconds, 1e-9), 0.0))
    return AnimationResult(
        output=Path(output),
        frames=done,
        fps=float(fps),
        seconds=seconds,
        has_audio=audio is not None and output_kind(output) == "video",
        initial_frame=initial_index,
        notes=notes,
    )
