"""The ``landmarks`` engine: animate a face photo with no model weights at all.

The driving face is tracked with dlib's 68 landmarks; its motion relative to the initial driving
frame is carried over to the source face (``face.motion``); the source is warped piecewise-
affinely so its landmarks land where that motion puts them (``face.warp``); an opening mouth gets
a painted interior (``face.mouth``). Only a region around the source face is warped, at the
photo's own resolution, and pasted back with a feathered edge, so a 4000-pixel portrait keeps
every pixel of its background and costs little more than a small one.

Control points of the warp, all in source pixels:
 - the 68 landmarks, which follow the driving expression and head motion;
 - a forehead row above the brows and a ring around the whole head, which follow head motion only
   (landmarks stop at the brows and jaw; without these, hair and forehead would stay behind when
   the head turns);
 - anchors on the region's border, which never move, so the background stays still.

State: ``animate`` keeps the tracker, the landmark smoother and the last seen pose on the state,
so chunks must be fed in order; a worker that starts mid-video with the same state simply
re-detects the face and starts smoothing afresh.
"""

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import torch

from animatica.errors import AnimaticaError
from animatica.face import geometry as g
from animatica.face.analyzer import (
    DetectorName,
    NoFaceError,
    as_rgb,
    describe_scan,
    get_analyzer,
    select_face,
)
from animatica.face.blend import feather_mask
from animatica.face.filters import OneEuroFilter
from animatica.face.motion import Retargeter
from animatica.face.mouth import mouth_colours, paint_mouth
from animatica.face.tracker import FaceTracker
from animatica.face.warp import MeshWarp

# Where the extra control points sit, in source face sizes (``geometry.face_size``).
_FOREHEAD = 0.32  # forehead row above the brows
_RING = 1.35  # ring around the head, as a multiple of the face outline's distance from its centre
_MARGIN = 0.3  # region margin beyond the ring
_ANCHORS_PER_SIDE = 5


@dataclass
class LandmarksState:
    source: np.ndarray  # (H, W, 3) uint8, the full picture
    region: tuple[int, int, int, int]  # y0, y1, x0, x1 of the animated region
    crop: torch.Tensor  # (1, 3, h, w) float32, the source region
    mask: np.ndarray  # (h, w, 1) paste-back weights
    warp: MeshWarp
    retarget: Retargeter
    head_points: np.ndarray  # (R, 2) control points that move with the head only
    anchors: np.ndarray  # (B, 2) control points that never move
    face_size: float
    source_gap: float  # source inner-lip gap in pixels
    cavity: np.ndarray
    teeth: np.ndarray
    tracker: FaceTracker
    smoother: OneEuroFilter | None
    driving_size: float
    last_pose: np.ndarray  # (68, 2) driving landmarks used for the latest frame
    paint_mouth: bool = True
    frames_without_face: int = 0
    frames: int = 0
    # Which scan found the face in the source and in the initial driving frame (``analyzer.SCANS``).
    source_found_by: str = "hog"
    driving_found_by: str = "hog"

    @property
    def face_notes(self) -> list[str]:
        """What a user should hear about how the faces were found: only when the quick HOG scan
        missed one, since a fallback is slower and says something about the input."""
        notes = []
        for what, scan in (("source image", self.source_found_by), ("driving video", self.driving_found_by)):
            if scan != "hog":
                notes.append(f"The face in the {what} was found by {describe_scan(scan)}.")
        return notes


class LandmarksEngine:
    name = "landmarks"
    frame_size: tuple[int, int] | None = None
    # Frames a segment starts early (and drops) so the tracker and smoother reach its first frame
    # settled: measured on the demo clip, the first frame of a segment then differs from a whole
    # run by about 1 grey level on average, as much as later frames do, instead of 4 without it.
    warmup_frames = 12

    def __init__(
        self,
        *,
        scale: float = 1.0,
        smoothing: float = 0.5,
        face_index: int | None = None,
        detector: DetectorName = "hog",
        detect_every: int = 1,
        work_side: int = 384,
        fps: float = 30.0,
        mouth: bool = True,
        source_name: str | None = None,
    ) -> None:
        if not 0.0 <= smoothing <= 1.0:
            raise AnimaticaError(f"Smoothing must be between 0 and 1, got {smoothing}.")
        if scale < 0:
            raise AnimaticaError(f"The motion scale must not be negative, got {scale}.")
        if face_index is not None and face_index < 0:
            raise AnimaticaError(f"The face index must be 0 or more, got {face_index}.")
        self.scale = scale
        self.smoothing = smoothing
        self.face_index = face_index
        self.detector = detector
        self.detect_every = detect_every
        self.work_side = work_side
        self.fps = fps
        self.mouth = mouth
        self.source_name = source_name
        self.analyzer = get_analyzer(detector)

    @classmethod
    def load(cls, **options: Any) -> Self:
        """No weights to load; the face models are loaded (once per process) on first use."""
        return cls(**options)

    def prepare(self, source: np.ndarray, initial_driving: np.ndarray) -> LandmarksState:
        source = as_rgb(source)
        what = f"the source image {self.source_name}" if self.source_name else "the source image"
        box = select_face(self.analyzer.detect(source, thorough=True), self.face_index, what)
        src = _separate_lips(self.analyzer.landmarks(source, box))
        size = g.face_size(src)

        # ``face_index`` picks the face to animate in the photo; the driving video's largest face drives.
        tracker = FaceTracker(self.analyzer, detect_every=self.detect_every)
        initial = tracker(as_rgb(initial_driving))
        if initial is None:
            raise NoFaceError(
                "No face was found in the first driving frame: use a driving video that starts on a "
                "clearly visible face."
            )

        head_points = _head_points(src, size)
        h, w = source.shape[:2]
        y0, y1, x0, x1 = _region(np.vstack([src, head_points]), size, (h, w))
        offset = np.array([x0, y0], dtype=np.float64)
        local_head = np.clip(head_points - offset, 0.5, [x1 - x0 - 1.5, y1 - y0 - 1.5])
        head_points = local_head + offset
        anchors = _border_anchors(y1 - y0, x1 - x0) + offset
        controls = np.vstack([src, head_points, anchors]) - offset
        warp = MeshWarp(controls, (y1 - y0, x1 - x0), work_side=self.work_side)

        crop = torch.from_numpy(source[y0:y1, x0:x1].astype(np.float32)).permute(2, 0, 1)[None].contiguous()
        mask = feather_mask((y1 - y0, x1 - x0), 0.08 * size, (y0 > 0, y1 < h, x0 > 0, x1 < w))
        cavity, teeth = mouth_colours(source, src)
        smoother = None
        if self.smoothing > 0:
            # smoothing 0.5 -> 1 Hz minimum cutoff, 1 -> 0.1 Hz; fast motions open it up.
            smoother = OneEuroFilter(rate=self.fps, min_cutoff=10 ** (1 - 2 * self.smoothing), beta=8.0)
        return LandmarksState(
            source=source,
            region=(y0, y1, x0, x1),
            crop=crop,
            mask=mask,
            warp=warp,
            retarget=Retargeter(src, initial, scale=self.scale),
            head_points=head_points,
            anchors=anchors,
            face_size=size,
            source_gap=_mouth_gap(src),
            cavity=cavity,
            teeth=teeth,
            tracker=tracker,
            smoother=smoother,
            driving_size=g.face_size(initial),
            last_pose=initial,
            paint_mouth=self.mouth,
            source_found_by=box.detector,
            driving_found_by=tracker.found.detector if tracker.found is not None else "hog",
        )

    def animate(self, state: LandmarksState, driving: np.ndarray) -> np.ndarray:
        if driving.ndim != 4 or driving.shape[-1] != 3:
            raise AnimaticaError(f"Driving frames must be a (N, H, W, 3) array, got shape {driving.shape}.")
        out = np.empty((len(driving), *state.source.shape), dtype=np.uint8)
        # The warp's tensors are small: spreading each op over threads costs more in fork-join
        # overhead than it saves (measured 2-3x slower on 2 busy cores), so run them on one.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for i, frame in enumerate(driving):
                out[i] = self.render(state, self.track(state, frame))
        finally:
            torch.set_num_threads(threads)
        return out

    def track(self, state: LandmarksState, frame: np.ndarray) -> np.ndarray:
        """The smoothed driving landmarks for the next frame, or the held pose if it has no face."""
        state.frames += 1
        points = state.tracker(as_rgb(frame))
        if points is None:
            state.frames_without_face += 1
            return state.last_pose
        if state.smoother is not None:
            points = state.smoother(points / state.driving_size) * state.driving_size
        state.last_pose = points
        return points

    def render(self, state: LandmarksState, pose: np.ndarray) -> np.ndarray:
        """The source picture with its face moved to ``pose`` (driving landmarks)."""
        target, head = state.retarget(pose)
        y0, y1, x0, x1 = state.region
        offset = np.array([x0, y0], dtype=np.float64)
        controls = np.vstack([target, g.apply(head, state.head_points), state.anchors]) - offset
        warped = state.warp.warp(state.crop, controls)[0].permute(1, 2, 0).numpy()
        if state.paint_mouth:
            opacity = _mouth_opacity(_mouth_gap(target), state.source_gap, state.face_size)
            if opacity > 0:
                teeth_height = max(state.source_gap, 0.05 * state.face_size)
                inner = target[g.INNER_LIPS] - offset
                paint_mouth(warped, inner, state.cavity, state.teeth, teeth_height, opacity)
        original = state.source[y0:y1, x0:x1]
        blended = original + state.mask * (warped - original)
        frame = state.source.copy()
        frame[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return frame


def _separate_lips(points: np.ndarray) -> np.ndarray:
    """Closed lips put upper and lower inner-lip points on the same pixel; the triangulation
    needs them apart, so a closed mouth gets a half-pixel gap."""
    out = points.astype(np.float64).copy()
    down = g.down_axis(out)
    for upper, lower in g.MOUTH_PAIRS:
        gap = float((out[lower] - out[upper]) @ down)
        if gap < 1.0:
            mid = (out[lower] + out[upper]) / 2
            out[upper] = mid - 0.5 * down
            out[lower] = mid + 0.5 * down
    # Any other coincident points (dlib rounds to whole pixels) get nudged apart.
    _, first = np.unique(np.round(out, 3), axis=0, return_index=True)
    for i in sorted(set(range(len(out))) - set(first.tolist())):
        out[i] += 0.25
    return out


def _head_points(points: np.ndarray, size: float) -> np.ndarray:
    """Forehead row and ring around the head, which move rigidly with it."""
    up = -g.down_axis(points)
    forehead = points[g.BROWS] + _FOREHEAD * size * up
    outline = np.vstack([points[g.JAW], forehead[::-1]])
    centre = outline.mean(axis=0)
    ring = centre + _RING * (outline[::2] - centre)
    return np.vstack([forehead, ring])


def _region(points: np.ndarray, size: float, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    h, w = shape
    lo = points.min(axis=0) - _MARGIN * size
    hi = points.max(axis=0) + _MARGIN * size
    x0, y0 = max(0, int(np.floor(lo[0]))), max(0, int(np.floor(lo[1])))
    x1, y1 = min(w, int(np.ceil(hi[0])) + 1), min(h, int(np.ceil(hi[1])) + 1)
    return y0, y1, x0, x1


def _border_anchors(h: int, w: int) -> np.ndarray:
    """Points on the region's outer edge (pixel edges, so every pixel centre is inside)."""
    xs = np.linspace(-0.5, w - 0.5, _ANCHORS_PER_SIDE)
    ys = np.linspace(-0.5, h - 0.5, _ANCHORS_PER_SIDE)[1:-1]
    return np.vstack(
        [
            np.c_[xs, np.full_like(xs, -0.5)],
            np.c_[xs, np.full_like(xs, h - 0.5)],
            np.c_[np.full_like(ys, -0.5), ys],
            np.c_[np.full_like(ys, w - 0.5), ys],
        ]
    )


def _mouth_gap(points: np.ndarray) -> float:
    pairs = g.MOUTH_PAIRS
    return float(np.linalg.norm(points[pairs[:, 1]] - points[pairs[:, 0]], axis=1).mean())


def _mouth_opacity(gap: float, source_gap: float, size: float) -> float:
    """How strongly to paint the mouth: not at all while it is no wider open than in the photo
    (its own interior is best there), fully once the lips have parted 6 % of the face size more."""
    return float(np.clip((gap - source_gap - 0.5) / (0.06 * size), 0.0, 1.0))
