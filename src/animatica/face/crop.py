"""Square, steady crops around a face: for FOMM inputs, which must show the head the way the
training videos did (face centred, filling about half the frame).

A video is cropped in two passes: the first finds the face on every ``every``-th frame and
follows it by overlap (IoU) so another face walking in does not steal the crop; the boxes are
interpolated across frames not looked at (or where the face was missed) and smoothed in time,
so the crop glides with the head instead of trembling with the detector. The second pass cuts
and resizes. Photos get the same framing from one detection. `crop_file` (``animatica crop``)
can instead cut as the liveportrait or vaegan engine cuts (``face.portrait_crop``), so that what a
user prepares or inspects is exactly what that engine will animate.
"""

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter1d

from animatica.errors import AnimaticaError, MediaError
from animatica.face.analyzer import FaceAnalyzer, FaceBox, NoFaceError, get_analyzer, select_face
from animatica.face.tracker import search_near
from animatica.media.limits import DEFAULT_LIMITS, MediaLimits
from animatica.media.probe import probe
from animatica.media.reader import iter_frames, read_image
from animatica.media.writer import open_writer

if TYPE_CHECKING:
    from animatica.face.portrait_crop import Framing

DEFAULT_SCALE = 1.8  # crop side / landmark box side
DEFAULT_OFFSET = (0.0, -0.1)  # shift of the crop centre, in crop sides (negative y: up, to keep the hair)


def crop_box(
    points: np.ndarray, scale: float = DEFAULT_SCALE, offset: tuple[float, float] = DEFAULT_OFFSET
) -> np.ndarray:
    """(centre x, centre y, side) of the square crop around one face's landmarks."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    side = float((hi - lo).max()) * scale
    centre = (lo + hi) / 2 + np.asarray(offset) * side
    return np.array([centre[0], centre[1], side])


def fit_inside(box: np.ndarray, height: int, width: int) -> np.ndarray:
    """The box shrunk to fit the frame if needed, then moved inside it (no padding ever)."""
    cx, cy, side = box
    side = min(side, height, width)
    cx = float(np.clip(cx, side / 2, width - side / 2))
    cy = float(np.clip(cy, side / 2, height - side / 2))
    return np.array([cx, cy, side])


def track_boxes(
    frames: Iterable[np.ndarray],
    *,
    analyzer: FaceAnalyzer | None = None,
    every: int = 5,
    scale: float = DEFAULT_SCALE,
    offset: tuple[float, float] = DEFAULT_OFFSET,
    smooth: float = 8.0,
    face_index: int | None = None,
    what: str = "the driving video",
    frame_box: Callable[[np.ndarray], np.ndarray] | None = None,
    inside: bool = True,
) -> np.ndarray:
    """``(N, 3)`` smoothed crop boxes (centre x, centre y, side), one per frame, inside the frame.

    ``frame_box`` replaces ``crop_box`` for other framings (landmarks -> any vector of numbers,
    each interpolated and smoothed on its own); ``inside=False`` lets boxes reach beyond the frame.
    """
    if every < 1:
        raise AnimaticaError(f"The face search interval must be at least 1 frame, got {every}.")
    analyzer = analyzer or get_analyzer()
    samples: dict[int, np.ndarray] = {}
    previous: FaceBox | None = None
    count, shape = 0, (0, 0)
    for i, frame in enumerate(frames):
        count, shape = i + 1, frame.shape[:2]
        if i % every:
            continue
        if previous is not None and previous.detector != "hog":
            # Found by a fallback scan (small, squashed, or seen only by the CNN): look again that
            # way, around where it was, which costs about what a quick scan of the whole frame does.
            near = search_near(analyzer, frame, previous, margin=0.5, min_score=-0.2)
            faces = [near] if near is not None else analyzer.detect(frame)
        else:
            # The first frame looked at is where the face must be found: all scans, if need be.
            faces = analyzer.detect(frame, thorough=i == 0)
        if not faces:
            continue
        if previous is None:
            if face_index is not None and face_index >= len(faces):
                continue
            box = select_face(faces, face_index, what)
        else:
            box = max(faces, key=previous.iou)
            if previous.iou(box) < 0.2:
                continue  # a different face; ours is hidden or gone for now
        previous = box
        points = analyzer.landmarks(frame, box)
        samples[i] = frame_box(points) if frame_box is not None else crop_box(points, scale, offset)
    if not samples:
        raise NoFaceError(f"No face was found in {what}: use a video that shows a face clearly.")
    known = np.array(sorted(samples))
    values = np.array([samples[k] for k in known])
    index = np.arange(count)
    boxes = np.stack([np.interp(index, known, values[:, j]) for j in range(values.shape[1])], axis=1)
    if smooth > 0 and count > 2:
        boxes = _smooth(boxes, smooth)
    return np.array([fit_inside(b, *shape) for b in boxes]) if inside else boxes


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along time that keeps steady drifts at the ends.

    Padding by point reflection (2 x_0 - x_k) extends a linear motion past the ends, so the
    first and last crops do not lag behind a face that moves steadily.
    """
    pad = min(len(values) - 1, int(4 * sigma) + 1)
    head = 2 * values[:1] - values[pad:0:-1]
    tail = 2 * values[-1:] - values[-2 : -pad - 2 : -1]
    extended = np.concatenate([head, values, tail])
    return gaussian_filter1d(extended, sigma, axis=0, mode="nearest")[pad : pad + len(values)]


Size = int | tuple[int, int] | None  # side, (height, width), or None for the crop's own size


def _output_size(size: Size, side: float) -> tuple[int, int]:
    """(width, height) of the output; ``None`` keeps the crop at its own resolution."""
    if size is None:
        n = max(1, round(side))
        return n, n
    if isinstance(size, int):
        return size, size
    return size[1], size[0]


def cut(frame: np.ndarray, box: np.ndarray, size: Size) -> np.ndarray:
    """The square ``box`` of ``frame`` resized to ``size`` (sub-pixel accurate)."""
    cx, cy, side = box
    area = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    return np.asarray(Image.fromarray(frame).resize(_output_size(size, side), Image.BICUBIC, box=area))


def crop_frames_iter(
    frames: Path | Callable[[], Iterable[np.ndarray]], size: Size = 256, **options: object
) -> Iterator[np.ndarray]:
    """Cropped frames of a video, computed on the fly in two passes over the input.

    ``frames`` is a video path, or a callable returning a fresh frame iterator each time (it is
    called twice: boxes first, then cropping). ``size`` None keeps one output size for the whole
    video: the median crop side. Options are those of ``track_boxes``.
    """
    open_frames = (lambda: iter_frames(frames)) if isinstance(frames, Path) else frames
    if isinstance(frames, Path):
        options.setdefault("what", f"the video {frames.name}")
    boxes = track_boxes(open_frames(), **options)  # type: ignore[arg-type]
    yield from crop_with_boxes(open_frames(), boxes, size)


def crop_with_boxes(
    frames: Iterable[np.ndarray], boxes: np.ndarray, size: Size = 256
) -> Iterator[np.ndarray]:
    """Cut each frame at its ``track_boxes`` box; ``size`` None: the median crop side for all frames.

    Separate from ``crop_frames_iter`` so that a caller passing over the video several times (the
    pipeline: initial frame, then the animation) tracks the face once and crops from any frame on.
    """
    if size is None:
        size = max(1, round(float(np.median(boxes[:, 2]))))
    for frame, box in zip(frames, boxes, strict=False):
        yield cut(frame, box, size)


def crop_image(
    image: np.ndarray,
    size: Size = 256,
    *,
    scale: float = DEFAULT_SCALE,
    offset: tuple[float, float] = DEFAULT_OFFSET,
    face_index: int | None = None,
    analyzer: FaceAnalyzer | None = None,
    what: str = "the source image",
) -> np.ndarray:
    """A photo framed the way ``crop_video`` frames a video."""
    analyzer = analyzer or get_analyzer()
    box = select_face(analyzer.detect(image, thorough=True), face_index, what)
    square = fit_inside(crop_box(analyzer.landmarks(image, box), scale, offset), *image.shape[:2])
    return cut(image, square, size)


def crop_video(
    input: Path,
    output: Path,
    size: int = 256,
    *,
    scale: float = DEFAULT_SCALE,
    offset: tuple[float, float] = DEFAULT_OFFSET,
    every: int = 5,
    smooth: float = 8.0,
    face_index: int | None = None,
    limits: MediaLimits = DEFAULT_LIMITS,
    framing: "Framing | None" = None,
) -> int:
    """Write the face crop of a video (audio kept) read within ``limits``; returns the frames written.

    With a ``framing`` (``face.portrait_crop``), the video is tracked and cut as the engine of that
    framing cuts its driving video, windows reaching past the frame included; ``scale``, ``offset``,
    ``every`` and ``smooth`` are then the framing's and the engine's.
    """
    info = probe(input, limits)
    rate = info.frame_rate or info.fps or 25.0
    what = f"the video {input.name}"

    def open_frames() -> Iterator[np.ndarray]:
        return iter_frames(input, limits=limits)

    if framing is not None:
        from animatica.face.portrait_crop import crop_with_windows, track_windows

        windows = track_windows(open_frames(), framing=framing, face_index=face_index, what=what)
        frames = crop_with_windows(open_frames(), windows, size)
    else:
        frames = crop_frames_iter(
            open_frames, size, scale=scale, offset=offset, every=every, smooth=smooth,
            face_index=face_index, what=what,
        )  # fmt: skip
    written = 0
    with open_writer(output, rate, audio_from=input if info.has_audio else None) as writer:
        for frame in frames:
            writer.write(frame)
            written += 1
    return written


def crop_image_file(
    input: Path,
    output: Path,
    size: int = 256,
    *,
    scale: float = DEFAULT_SCALE,
    offset: tuple[float, float] = DEFAULT_OFFSET,
    face_index: int | None = None,
    limits: MediaLimits = DEFAULT_LIMITS,
    framing: "Framing | None" = None,
) -> None:
    """Write the face crop of a photo read within ``limits``; the output appears complete or not at all.

    With a ``framing`` (``face.portrait_crop``), the photo is cut as the engine of that framing cuts
    its source (turned upright where the framing says), instead of by ``scale`` and ``offset``.
    """
    image, what = read_image(input, limits), f"the image {input.name}"
    if framing is not None:
        from animatica.face.portrait_crop import crop_portrait

        cropped = crop_portrait(image, size, framing=framing, face_index=face_index, what=what).image
    else:
        cropped = crop_image(image, size, scale=scale, offset=offset, face_index=face_index, what=what)
    fmt = Image.registered_extensions().get(output.suffix.lower())
    if fmt is None:
        raise MediaError(f"Cannot write {output.name}: give the output image a .png or .jpg suffix.")
    partial = output.with_name(f".{output.name}.partial")
    try:
        Image.fromarray(cropped).save(partial, format=fmt)
        os.replace(partial, output)
    except (OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise MediaError(
            f"Cannot write {output}: {exc}; choose a writable path ending in .png or .jpg."
        ) from exc


def crop_file(
    input: Path,
    output: Path,
    *,
    framing: str = "plain",
    size: int | None = None,
    scale: float | None = None,
    offset: tuple[float | None, float | None] = (None, None),
    face_index: int | None = None,
    limits: MediaLimits = DEFAULT_LIMITS,
) -> int | None:
    """``animatica crop``: the face crop of a photo or a video; the frames written, None for a photo.

    ``framing`` ``plain`` is this module's square box (``scale`` and ``offset`` default to
    `DEFAULT_SCALE` and `DEFAULT_OFFSET`, ``size`` to 256); an engine's name (``liveportrait``,
    ``vaegan``) cuts as that engine does (``face.portrait_crop.engine_framing``), the photo's
    framing for a photo and the driving video's for a video, with ``scale`` and ``offset`` changing
    the framing's own values where given; liveportrait's ``size`` defaults to the 512 pixels its
    reference implementation cuts at.
    """
    from dataclasses import replace

    from animatica.face.portrait_crop import DEFAULT_SIZE, engine_framing

    photo = probe(input, limits).kind == "image"
    options: dict[str, Any] = {"face_index": face_index, "limits": limits}
    if framing == "plain":
        shift = tuple(
            default if given is None else given for given, default in zip(offset, DEFAULT_OFFSET, strict=True)
        )
        options.update(scale=DEFAULT_SCALE if scale is None else scale, offset=shift)
    else:
        changes = {"scale": scale, "vx": offset[0], "vy": offset[1]}
        chosen = engine_framing(framing, photo=photo)
        options["framing"] = replace(
            chosen, **{key: value for key, value in changes.items() if value is not None}
        )
    side = size if size is not None else DEFAULT_SIZE if framing == "liveportrait" else 256
    if photo:
        crop_image_file(input, output, side, **options)
        return None
    return crop_video(input, output, side, **options)
