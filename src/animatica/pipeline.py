"""One animation from input files to an output file, in two steps: prepare, then animate.

probe and validate the inputs → load the engine → ``prepare``: read and fit the source, find the
initial driving frame, track the face boxes if cropping, ``engine.prepare`` once → ``animate``:
stream the driving video through ``engine.animate`` in batches → encode. Frames are never all in
memory: a decoder, one batch and an encoder are, whatever the video's length. The output appears
only when complete (the writer renames a temporary file at the end).

With ``best_frame`` N, relative motion is measured from driving frame N instead of frame 0: this is
what the reference's forward-and-backward animation from frame N computes, since each output frame
depends only on its own driving frame, the source and the initial frame.

A job cut into segments prepares once: `prepare` returns a `PreparedJob`, whose ``to_bytes`` any
worker can store, and each segment passes it back (``animate(..., prepared=blob)``), which skips
everything that depends only on the source and the initial frame: the source's face detection,
the search for the best frame, the face-box pass over the whole video, ``engine.prepare``. The
blob is plain data read with ``torch.load(weights_only=True)``; it names its format and version
and the inputs and options it was prepared for, and a blob that does not match is refused
(`StateError`) rather than animating the wrong thing.
"""

import hashlib
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from animatica.engines import choose_engine, load_engine
from animatica.engines.base import Engine, StateError
from animatica.errors import AnimaticaError
from animatica.media.fit import fit_frame
from animatica.media.limits import MediaLimits
from animatica.media.probe import MediaInfo, probe, require_image, require_video
from animatica.media.reader import FrameLimitExceeded, iter_chunks, iter_frames, read_image
from animatica.media.writer import check_writable, open_writer, output_kind

PREPARED_FORMAT = "animatica.prepared"
PREPARED_VERSION = 1  # of the blob's layout; a blob of another version is refused, not guessed at


class Cancelled(AnimaticaError):
    """The caller asked to stop; nothing was written."""


@dataclass
class AnimationRequest:
    source: Path
    driving: Path
    # An .mp4 file, or a folder for PNG frames. Give a path ending in "/" as a string: a Path drops
    # the slash, and "x.frames/" would then read as a video named x.frames.
    output: Path | str
    engine: str = "auto"  # a name of engines.ENGINES, or "auto": see engines.choose_engine
    checkpoint: str | None = None
    config: str | None = None
    relative: bool = True
    adapt_scale: bool = False
    best_frame: int | None = None
    find_best_frame: bool = False
    # Crop both inputs around the face; None: as the engine wants (on for liveportrait, whose
    # networks expect its portrait framing; for vaegan, on when the photo is larger than its
    # input and shows a face; off for the others).
    crop_face: bool | None = None
    # Put the animated face crop back into the full source photo (engines with a square frame
    # size); None: on when cropping for liveportrait. See ``face.portrait_crop``.
    paste_back: bool | None = None
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
    # The general guards on both inputs (pixels, frames); the caller builds them from its settings.
    limits: MediaLimits = field(default_factory=MediaLimits)
    # Where a bare checkpoint name is looked up besides the shipped ones (the caller's settings).
    checkpoints_dir: Path | None = None
    # Tags of the output (MP4 container tags, or each PNG frame's text), e.g. that it is synthetic.
    metadata: dict[str, str] = field(default_factory=dict)
    # A label stamped into a corner of every output frame (``media.watermark``), or None. Drawn
    # per frame, so a segment's frames are those of the whole run.
    visible_mark: str | None = None


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


@dataclass
class PreparedJob:
    """What an animation computes once from its source and its initial driving frame.

    ``state`` is the engine's state as plain data (``Engine.state_to_dict``); ``key`` digests
    the two input files and the options the state depends on, so that a blob is only ever used
    for the animation it was prepared for.
    """

    engine: str
    key: str
    initial_frame: int
    state: dict[str, Any]
    boxes: np.ndarray | None = None  # (frames, 3 or 4) face crop boxes for the whole video, if cropping
    window: np.ndarray | None = None  # (4,) the source's crop window, when pasting back

    def to_bytes(self) -> bytes:
        """The blob: a ``torch.save`` of dicts, strings, numbers and tensors only."""
        buffer = io.BytesIO()
        _save_tree(
            {
                "format": PREPARED_FORMAT,
                "version": PREPARED_VERSION,
                "engine": self.engine,
                "key": self.key,
                "initial_frame": int(self.initial_frame),
                "state": self.state,
                "boxes": None if self.boxes is None else _tensor(self.boxes),
                "window": None if self.window is None else _tensor(self.window),
            },
            buffer,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "PreparedJob":
        """Read a blob of ``to_bytes``; ``StateError`` for anything else (damaged, foreign, other version)."""
        try:
            tree = _load_tree(io.BytesIO(data))
        except Exception as exc:  # torch raises many kinds for a damaged or foreign pickle
            raise StateError(
                f"the prepared state is damaged or is not an Animatica prepared state ({type(exc).__name__})"
            ) from exc
        if not isinstance(tree, dict) or tree.get("format") != PREPARED_FORMAT:
            raise StateError("the data is not an Animatica prepared state")
        if tree.get("version") != PREPARED_VERSION:
            raise StateError(
                f"the prepared state has format version {tree.get('version')!r}; this version reads "
                f"{PREPARED_VERSION}: prepare the job again"
            )
        boxes, window = tree.get("boxes"), tree.get("window")
        try:
            return cls(
                engine=str(tree["engine"]),
                key=str(tree["key"]),
                initial_frame=int(tree["initial_frame"]),
                state=dict(tree["state"]),
                boxes=None if boxes is None else boxes.numpy(),
                window=None if window is None else window.numpy(),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"the prepared state is incomplete ({exc!r})") from exc


def _save_tree(tree: Any, buffer: io.BytesIO) -> None:
    """torch is imported here, not with the module: a process that never prepares loads none of it."""
    import torch

    torch.save(tree, buffer)


def _load_tree(buffer: io.BytesIO) -> Any:
    """Plain data only: ``weights_only`` refuses any pickled object other than tensors and builtins."""
    import torch

    return torch.load(buffer, map_location="cpu", weights_only=True)


def _tensor(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.array(array, copy=True))


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
            checkpoints_dir=request.checkpoints_dir,
        )
    elif name == "vaegan":  # its strength and keep_detail come in engine_options
        options.update(
            device=request.device,
            checkpoint=request.checkpoint,
            precision=request.precision,
            checkpoints_dir=request.checkpoints_dir,
        )
    elif name == "liveportrait":  # its motion switches (region, stitching, …) come in engine_options
        options.update(
            device=request.device,
            checkpoint=request.checkpoint,
            precision=request.precision,
            relative=request.relative,
            checkpoints_dir=request.checkpoints_dir,
        )
    else:
        options.setdefault("source_name", Path(request.source).name)
    return options


# Engines whose inputs are framed from face landmarks (``face.portrait_crop.framings``).
_PORTRAIT_ENGINES = frozenset({"liveportrait", "vaegan"})


# Engines that crop a face out of a larger photo and paste it back by default, where one is found
# (a picture no larger than the model's input is taken as the face crop it already is).
_FACE_CROP_ENGINES = frozenset({"vaegan"})


def _face_crop_helps(request: AnimationRequest, engine: Engine) -> bool:
    """Whether the source photo is larger than the engine's input and shows a face."""
    from animatica.face.analyzer import get_analyzer

    image = read_image(request.source, request.limits)
    if engine.frame_size is None or max(image.shape[:2]) <= max(engine.frame_size):
        return False
    return bool(get_analyzer().detect(image, thorough=True))


def _resolved(request: AnimationRequest, engine: Engine) -> AnimationRequest:
    """The request with its automatic choices (``None``) made for ``engine``."""
    from dataclasses import replace

    portrait = engine.name in _PORTRAIT_ENGINES
    paste = request.paste_back
    if request.crop_face is None and paste is None and engine.name in _FACE_CROP_ENGINES:
        crop = paste = _face_crop_helps(request, engine)
        return replace(request, crop_face=crop, paste_back=paste)
    crop = (portrait or bool(paste)) if request.crop_face is None else request.crop_face
    if paste is None:
        paste = crop and portrait
    elif paste and engine.frame_size is None:
        raise AnimaticaError(
            f"--paste-back is for engines that animate a face crop; the {engine.name} engine "
            "animates the whole photo already"
        )
    elif paste and not crop:
        raise AnimaticaError("--paste-back puts an animated face crop back: it needs cropping (--crop-face)")
    return replace(request, crop_face=crop, paste_back=paste)


def _crop_side(engine: Engine) -> int:
    from animatica.face.portrait_crop import DEFAULT_SIZE

    return max(engine.frame_size) if engine.frame_size is not None else DEFAULT_SIZE


def _face_track(request: AnimationRequest, engine: Engine, info: MediaInfo) -> np.ndarray | None:
    """Smoothed face crop boxes for every driving frame (one pass over the whole video), if asked."""
    if not request.crop_face:
        return None
    model_side = max(engine.frame_size) if engine.frame_size is not None else 0
    if engine.name in _FACE_CROP_ENGINES and max(info.width or 0, info.height or 0) <= model_side:
        return None  # a driving clip no larger than the model's input is already a face crop
    if engine.name in _PORTRAIT_ENGINES:
        from animatica.face.portrait_crop import framings, track_windows

        return track_windows(
            _driving(request, info), framing=framings(engine.name)[1], what=f"the video {info.path.name}"
        )
    from animatica.face.crop import track_boxes

    return track_boxes(_driving(request, info), what=f"the video {info.path.name}")


def _driving(request: AnimationRequest, info: MediaInfo, start: int = 0) -> Iterator[np.ndarray]:
    """The driving frames from ``start`` on; every pass over the video comes through here, under its limit."""
    return iter_frames(info.path, start, max_frames=request.max_frames, limits=request.limits)


def _frames(
    request: AnimationRequest, engine: Engine, info: MediaInfo, boxes: np.ndarray | None, start: int = 0
) -> Iterator[np.ndarray]:
    """Driving frames from ``start`` on, as the engine wants them: face-cropped if asked, fitted."""
    frames: Iterator[np.ndarray] = _driving(request, info, start)  # seeks: a segment costs O(its length)
    if boxes is not None and engine.name in _PORTRAIT_ENGINES:
        from animatica.face.portrait_crop import crop_with_windows

        frames = crop_with_windows(frames, boxes[start:], _crop_side(engine))
    elif boxes is not None:
        from animatica.face.crop import crop_with_boxes

        frames = crop_with_boxes(frames, boxes[start:], engine.frame_size)
    if engine.frame_size is not None:
        frames = (fit_frame(f, engine.frame_size, request.fit) for f in frames)  # type: ignore[arg-type]
    return frames


def _full_source(request: AnimationRequest) -> np.ndarray:
    """The source photo; when the animation is pasted back into it, at most the paste-back size."""
    image = read_image(request.source, request.limits)
    if request.paste_back:
        from animatica.face.portrait_crop import PASTE_BACK_MAX_SIDE
        from animatica.media.fit import fit_within

        image = fit_within(image, PASTE_BACK_MAX_SIDE)
    return image


def _source(request: AnimationRequest, engine: Engine) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """The engine's source image, and when pasting back: the crop's window and the `PasteBack`."""
    image = _full_source(request)
    window, paste = None, None
    if request.crop_face and (request.paste_back or engine.name in _PORTRAIT_ENGINES):
        from animatica.face.portrait_crop import PasteBack, crop_portrait, framings

        crop = crop_portrait(image, _crop_side(engine), framing=framings(engine.name)[0])
        if request.paste_back:
            window, paste = crop.window.to_array(), PasteBack(image, crop.window)
        image = crop.image
    elif request.crop_face:
        from animatica.face.crop import crop_image

        image = crop_image(image, engine.frame_size)
    if engine.frame_size is not None:
        image = fit_frame(image, engine.frame_size, request.fit)  # type: ignore[arg-type]
    return image, window, paste


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
        return find_best_frame(read_image(request.source, request.limits), _driving(request, info))
    return 0


def _too_long(request: AnimationRequest, info: MediaInfo) -> AnimaticaError:
    """The failure of a video longer than ``max_frames``, without the server's paths in it."""
    limit = request.max_frames or 0
    about = f" (about {limit / info.fps:.1f} s at its frame rate)" if info.fps else ""
    return AnimaticaError(
        f"The driving video has more than {limit:,} frames{about}, more than this animation may use; "
        "trim the clip and try again."
    )


def _check_request(request: AnimationRequest) -> MediaInfo:
    """Both inputs probed and the request's numbers checked, before any work; the driving video's info."""
    if request.max_frames is not None and request.max_frames < 1:
        raise AnimaticaError(f"max_frames must be at least 1, got {request.max_frames}")
    require_image(probe(Path(request.source), request.limits))
    driving_info = require_video(probe(Path(request.driving), request.limits))
    limit = request.max_frames
    if limit is not None and driving_info.frame_count_exact and (driving_info.frame_count or 0) > limit:
        raise _too_long(request, driving_info)  # the container's index says so: refuse before any work
    return driving_info


def _file_digest(path: Path, digest: Any) -> None:
    """Feed a file, or a folder of frames (names and contents, in order), to ``digest``."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.name.encode() if path.is_dir() else b"")
        with file.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)


def _prepared_key(request: AnimationRequest, name: str) -> str:
    """What a prepared state depends on: the engine, its options, the framing and both inputs.

    Where the weights sit on a worker (``checkpoint``, ``checkpoints_dir``, the ONNX swap models),
    the threads, the device and the precision are left out: workers differ in those and the
    engine checks its own (see ``Engine.state_from_dict``). ``source_name`` only words messages.
    """
    options = _engine_options(request, name)
    local_options = ("source_name", "checkpoint", "checkpoints_dir", "config", "device", "precision")
    for local in (*local_options, "swap_model", "identity_model", "threads"):
        options.pop(local, None)
    digest = hashlib.sha256()
    described = {"engine": name, "options": options, "crop_face": request.crop_face, "fit": request.fit}
    if request.paste_back:
        described["paste_back"] = True
    digest.update(json.dumps(described, sort_keys=True, default=repr).encode())
    for path in (request.source, request.driving):
        digest.update(b"\0")
        _file_digest(Path(path), digest)
    return digest.hexdigest()


@dataclass
class _Setup:
    """An animation ready to run: its engine, state, initial frame and crop boxes."""

    engine: Engine
    state: Any
    initial_index: int
    boxes: np.ndarray | None
    done: int = 0  # frames animated so far
    window: np.ndarray | None = None  # the source's crop window, when pasting back
    paste: Any = None  # its `face.portrait_crop.PasteBack`


def _load(request: AnimationRequest) -> tuple[str, Engine]:
    name = choose_engine(request.engine, request.checkpoint)
    return name, load_engine(name, **_engine_options(request, name))


def load_request_engine(request: AnimationRequest) -> tuple[str, Engine]:
    """The engine ``request`` would animate with, loaded with its options, and its concrete name.

    For callers that drive an engine themselves (an evaluation) but must run it exactly as an
    animation would; only the engine fields of the request (engine, checkpoint, config, device,
    precision, motion options, checkpoints folder, engine options) are read.
    """
    return _load(request)


def _prepare(
    request: AnimationRequest, engine: Engine, info: MediaInfo, report: Callable[[Progress], None]
) -> _Setup:
    """Everything that depends only on the source and the initial driving frame, computed once."""
    source, window, paste = _source(request, engine)
    initial_index = _initial_index(request, info)
    boxes = _face_track(request, engine, info)  # once, shared by the initial frame and the animation
    initial = _frame_at(
        _frames(request, engine, info, boxes, initial_index), Path(request.driving), initial_index
    )
    state = engine.prepare(source, initial)
    # An engine that can tell up front that a video gives it nothing to do (a face swap on a video
    # without a face) says so here, once per job, before any frame is rendered or written.
    check_driving = getattr(engine, "check_driving", None)
    if check_driving is not None:
        check_driving(_driving(request, info), info.fps)
    report(Progress("prepare", 0, info.frame_count, 0.0, None))
    return _Setup(engine, state, initial_index, boxes, window=window, paste=paste)


def _from_prepared(
    request: AnimationRequest, name: str, engine: Engine, prepared: "PreparedJob | bytes"
) -> _Setup:
    job = prepared if isinstance(prepared, PreparedJob) else PreparedJob.from_bytes(prepared)
    if job.engine != name:
        raise StateError(f"the prepared state is for the {job.engine} engine, not for {name}")
    if job.key != _prepared_key(request, name):
        raise StateError("the prepared state was made for other inputs or options than this animation's")
    if request.best_frame is not None and request.best_frame != job.initial_frame:
        raise StateError(
            f"the prepared state measures motion from frame {job.initial_frame}, "
            f"not from {request.best_frame}"
        )
    paste = None
    if request.paste_back:
        if job.window is None:
            raise StateError("the prepared state has no crop window to paste the animation back with")
        from animatica.face.portrait_crop import CropWindow, PasteBack

        paste = PasteBack(_full_source(request), CropWindow.from_array(job.window))
    setup = _Setup(engine, engine.state_from_dict(job.state), job.initial_frame, job.boxes)
    setup.window, setup.paste = job.window, paste
    return setup


def preload(engine: str, **options: Any) -> None:
    """Load ``engine`` (a concrete name) with ``options`` and everything it would load on first use.

    For a worker process at start-up: imports and model files then cost nothing to its first job.
    The options are ``load_engine``'s (for fomm: ``checkpoint``, ``config``, ``device``, ``precision``,
    ``checkpoints_dir``), so that the networks it caches are the ones jobs will ask for.
    """
    load_engine(engine, **options).preload()


def prepare(request: AnimationRequest, on_progress: Callable[[Progress], None] | None = None) -> PreparedJob:
    """Do an animation's once-per-job work and return it as a `PreparedJob` (``to_bytes`` to store it).

    ``start``, ``stop`` and ``output`` are not used: one prepared job serves every segment.
    """
    info = _check_request(request)
    report = on_progress or (lambda p: None)
    try:
        report(Progress("load", 0, info.frame_count, 0.0, None))
        name, engine = _load(request)
        request = _resolved(request, engine)
        setup = _prepare(request, engine, info, report)
    except FrameLimitExceeded as error:  # only raised under request.max_frames
        raise _too_long(request, info) from error
    return PreparedJob(
        engine=name,
        key=_prepared_key(request, name),
        initial_frame=setup.initial_index,
        state=engine.state_to_dict(setup.state),
        boxes=setup.boxes,
        window=setup.window,
    )


def _start(
    request: AnimationRequest,
    info: MediaInfo,
    report: Callable[[Progress], None],
    prepared: "PreparedJob | bytes | None",
) -> _Setup:
    if request.batch_size < 1:
        raise AnimaticaError("--batch-size must be at least 1")
    if request.start < 0 or (request.stop is not None and request.stop < request.start):
        raise AnimaticaError(f"bad frame range [{request.start}, {request.stop})")
    report(Progress("load", 0, info.frame_count, 0.0, None))
    name, engine = _load(request)
    request = _resolved(request, engine)
    if prepared is None:
        return _prepare(request, engine, info, report)
    setup = _from_prepared(request, name, engine, prepared)
    report(Progress("prepare", 0, info.frame_count, 0.0, None))
    return setup


def _animated(
    request: AnimationRequest,
    info: MediaInfo,
    setup: _Setup,
    report: Callable[[Progress], None],
    cancelled: Callable[[], bool],
) -> Iterator[np.ndarray]:
    """Chunks of animated frames ``[start, stop)``; counts them on ``setup.done``."""
    engine, state = setup.engine, setup.state
    total = info.frame_count
    if total is not None:
        total = max(0, min(total, request.stop if request.stop is not None else total) - request.start)
    # An engine that carries state from frame to frame (tracking, smoothing) starts a segment some
    # frames early and only tracks them, so that it reaches the segment's first frame settled.
    warmup = min(request.start, engine.warmup_frames)
    first = request.start - warmup
    frames = _frames(request, engine, info, setup.boxes, first)
    if request.stop is not None:
        frames = islice(frames, request.stop - first)
    early = list(islice(frames, warmup))
    if early:
        engine.warm_up(state, np.stack(early))
    animate_started = time.perf_counter()
    for chunk in iter_chunks(frames, request.batch_size):
        if cancelled():
            raise Cancelled("the animation was canceled")
        animated = engine.animate(state, chunk)
        if setup.paste is not None:
            animated = setup.paste.frames(animated)
        if request.visible_mark:
            from animatica.media.watermark import stamp

            animated = stamp(animated, request.visible_mark)
        setup.done += len(animated)
        yield animated
        elapsed = time.perf_counter() - animate_started
        rate = setup.done / elapsed if elapsed > 0 else 0.0
        eta = (total - setup.done) / rate if total and rate > 0 and total >= setup.done else None
        report(Progress("animate", setup.done, total, rate, eta))
    if setup.done == 0:
        raise AnimaticaError(f"{Path(request.driving).name} has no frames to animate")


def animate_frames(
    request: AnimationRequest,
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    prepared: "PreparedJob | bytes | None" = None,
) -> Iterator[np.ndarray]:
    """The animated frames ``[start, stop)`` one by one, ``(H, W, 3)`` uint8, for a caller that
    stores them itself (a segment's file); ``request.output`` is not used.

    Nothing is read before the first frame is asked for; errors are raised from the iteration.
    """
    info = _check_request(request)
    report = on_progress or (lambda p: None)
    try:
        setup = _start(request, info, report, prepared)
        for chunk in _animated(request, info, setup, report, should_cancel or (lambda: False)):
            yield from chunk
    except FrameLimitExceeded as error:  # only raised under request.max_frames
        raise _too_long(request, info) from error


def animate(
    request: AnimationRequest,
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    prepared: "PreparedJob | bytes | None" = None,
) -> AnimationResult:
    """Run one animation; raises ``AnimaticaError`` (``Cancelled`` when stopped) and leaves no output then.

    With ``prepared`` (a `PreparedJob` or its bytes, from `prepare` on the same inputs and
    options), the once-per-job work is taken from it instead of being done again.
    """
    driving_info = _check_request(request)
    try:
        return _animate(request, driving_info, on_progress, should_cancel, prepared)
    except FrameLimitExceeded as error:  # only raised under request.max_frames
        raise _too_long(request, driving_info) from error


def _animate(
    request: AnimationRequest,
    driving_info: MediaInfo,
    on_progress: Callable[[Progress], None] | None,
    should_cancel: Callable[[], bool] | None,
    prepared: "PreparedJob | bytes | None",
) -> AnimationResult:
    started = time.perf_counter()
    report = on_progress or (lambda p: None)
    output = request.output
    check_writable(output)
    setup = _start(request, driving_info, report, prepared)
    fps = driving_info.frame_rate or Fraction(25)  # exact, e.g. 30000/1001; frame folders get 25
    audio = Path(request.driving) if driving_info.has_audio and request.keep_audio else None
    with open_writer(output, fps, audio_from=audio, metadata=request.metadata) as writer:
        for chunk in _animated(request, driving_info, setup, report, should_cancel or (lambda: False)):
            writer.write_chunk(chunk)

    state = setup.state
    notes = list(getattr(state, "face_notes", []))  # which detector found a face the quick scan missed
    missed = getattr(state, "frames_without_face", 0)
    if missed:
        notes.append(f"{missed} driving frames had no face; the last pose was held for them")
    done = setup.done
    seconds = time.perf_counter() - started
    report(Progress("done", done, done, done / max(seconds, 1e-9), 0.0))
    return AnimationResult(
        output=Path(output),
        frames=done,
        fps=float(fps),
        seconds=seconds,
        has_audio=audio is not None and output_kind(output) == "video",
        initial_frame=setup.initial_index,
        notes=notes,
    )
