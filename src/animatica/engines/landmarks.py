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
so chunks must be fed in order. A worker that starts mid-video from the prepared state tracks
``warmup_frames`` driving frames before its first one (``warm_up``: tracking only, no warp), so
the tracker has found the face and the smoother has settled on its motion by then.

The state saves as plain arrays and numbers (``state_to_dict``): the source, the region, its
paste-back mask, the control points, the mouth colours, the tracker's and the smoother's memory.
The warp's triangulation and the source crop are rebuilt from them on loading; both are
deterministic functions of what is saved, so a rebuilt state renders bit-identical frames.
"""

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import torch

from animatica.engines.base import StateError, check_state_dict
from animatica.errors import AnimaticaError
from animatica.face import geometry as g
from animatica.face.analyzer import (
    DetectorName,
    FaceAnalyzer,
    FaceBox,
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
STATE_VERSION = 1  # of ``state_to_dict``'s layout


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
    work_side: int = 384  # the warp's working resolution, kept to rebuild the warp

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
        src = g.separate_lips(self.analyzer.landmarks(source, box))
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
            work_side=self.work_side,
        )

    def preload(self) -> None:
        """The face models (seconds to read) are loaded here, not by the first frame of the first job."""
        from animatica.face import models

        models.frontal_detector()
        models.shape_predictor_68()
        if self.detector == "cnn":
            models.cnn_detector()

    def warm_up(self, state: LandmarksState, driving: np.ndarray) -> None:
        """Track the frames (no warp, no paste-back: most of a frame's cost is skipped); frames
        without a face here are not counted, since they belong to the segment before."""
        missed, seen = state.frames_without_face, state.frames
        for frame in driving:
            self.track(state, frame)
        state.frames_without_face, state.frames = missed, seen

    def state_to_dict(self, state: LandmarksState) -> dict[str, Any]:
        y0, y1, x0, x1 = state.region
        return {
            "engine": self.name,
            "version": STATE_VERSION,
            "source": _tensor(state.source),
            "region": [int(y0), int(y1), int(x0), int(x1)],
            "mask": _tensor(state.mask),
            "warp_points": _tensor(state.warp.points),
            "warp_iterations": int(state.warp.iterations),
            "work_side": int(state.work_side),
            "retarget_source": _tensor(state.retarget.source),
            "retarget_initial": _tensor(state.retarget.initial),
            "scale": float(state.retarget.scale),
            "head_points": _tensor(state.head_points),
            "anchors": _tensor(state.anchors),
            "face_size": float(state.face_size),
            "source_gap": float(state.source_gap),
            "cavity": _tensor(state.cavity),
            "teeth": _tensor(state.teeth),
            "tracker": _tracker_to_dict(state.tracker),
            "smoother": None if state.smoother is None else _smoother_to_dict(state.smoother),
            "driving_size": float(state.driving_size),
            "last_pose": _tensor(state.last_pose),
            "paint_mouth": bool(state.paint_mouth),
            "frames_without_face": int(state.frames_without_face),
            "frames": int(state.frames),
            "source_found_by": str(state.source_found_by),
            "driving_found_by": str(state.driving_found_by),
        }

    def state_from_dict(self, data: dict[str, Any]) -> LandmarksState:
        d = check_state_dict(data, self.name, STATE_VERSION)
        try:
            source = _array(d["source"])
            y0, y1, x0, x1 = (int(v) for v in d["region"])
            crop = (
                torch.from_numpy(source[y0:y1, x0:x1].astype(np.float32)).permute(2, 0, 1)[None].contiguous()
            )
            warp = MeshWarp(
                _array(d["warp_points"]),
                (y1 - y0, x1 - x0),
                work_side=int(d["work_side"]),
                iterations=int(d["warp_iterations"]),
            )
            return LandmarksState(
                source=source,
                region=(y0, y1, x0, x1),
                crop=crop,
                mask=_array(d["mask"]),
                warp=warp,
                retarget=Retargeter(_array(d["retarget_source"]), _array(d["retarget_initial"]), d["scale"]),
                head_points=_array(d["head_points"]),
                anchors=_array(d["anchors"]),
                face_size=d["face_size"],
                source_gap=d["source_gap"],
                cavity=_array(d["cavity"]),
                teeth=_array(d["teeth"]),
                tracker=_tracker_from_dict(self.analyzer, d["tracker"]),
                smoother=None if d["smoother"] is None else _smoother_from_dict(d["smoother"]),
                driving_size=d["driving_size"],
                last_pose=_array(d["last_pose"]),
                paint_mouth=d["paint_mouth"],
                frames_without_face=d["frames_without_face"],
                frames=d["frames"],
                source_found_by=d["source_found_by"],
                driving_found_by=d["driving_found_by"],
                work_side=int(d["work_side"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"the saved landmarks state is incomplete or malformed ({exc!r})") from exc

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


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor holding exactly ``array``'s values and dtype (a copy: the state stays unshared)."""
    return torch.from_numpy(np.array(array, copy=True))


def _array(value: Any) -> np.ndarray:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"expected a tensor, got {type(value).__name__}")
    return value.numpy().copy()


_BOX_FIELDS = ("left", "top", "right", "bottom", "score", "squash")


def _box_to_dict(box: FaceBox | None) -> dict[str, Any] | None:
    if box is None:
        return None
    return {**{k: float(getattr(box, k)) for k in _BOX_FIELDS}, "detector": str(box.detector)}


def _box_from_dict(data: dict[str, Any] | None) -> FaceBox | None:
    if data is None:
        return None
    return FaceBox(**{k: float(data[k]) for k in _BOX_FIELDS}, detector=str(data["detector"]))


def _tracker_to_dict(tracker: FaceTracker) -> dict[str, Any]:
    """The tracker's settings and its memory of the face (where it was, how it was found)."""
    relative = tracker._box_from_points
    return {
        "face_index": tracker.face_index,
        "detect_every": int(tracker.detect_every),
        "roi_margin": float(tracker.roi_margin),
        "min_score": float(tracker.min_score),
        "slow_every": int(tracker.slow_every),
        "lost_margin": float(tracker.lost_margin),
        "box": _box_to_dict(tracker.box),
        "found": _box_to_dict(tracker.found),
        "box_from_points": None if relative is None else [float(v) for v in relative],
        "count": int(tracker._count),
        "lost": int(tracker._lost),
    }


def _tracker_from_dict(analyzer: FaceAnalyzer, data: dict[str, Any]) -> FaceTracker:
    tracker = FaceTracker(
        analyzer,
        face_index=data["face_index"],
        detect_every=int(data["detect_every"]),
        roi_margin=float(data["roi_margin"]),
        min_score=float(data["min_score"]),
        slow_every=int(data["slow_every"]),
        lost_margin=float(data["lost_margin"]),
    )
    tracker.box = _box_from_dict(data["box"])
    tracker.found = _box_from_dict(data["found"])
    relative = data["box_from_points"]
    tracker._box_from_points = None if relative is None else tuple(float(v) for v in relative)  # type: ignore[assignment]
    tracker._count = int(data["count"])
    tracker._lost = int(data["lost"])
    return tracker


def _smoother_to_dict(smoother: OneEuroFilter) -> dict[str, Any]:
    value, speed = smoother._value, smoother._speed
    return {
        "dt": float(smoother.dt),
        "min_cutoff": float(smoother.min_cutoff),
        "beta": float(smoother.beta),
        "d_cutoff": float(smoother.d_cutoff),
        "value": None if value is None else _tensor(value),
        "speed": None if speed is None else _tensor(speed),
    }


def _smoother_from_dict(data: dict[str, Any]) -> OneEuroFilter:
    smoother = OneEuroFilter(
        rate=1.0 / float(data["dt"]),
        min_cutoff=float(data["min_cutoff"]),
        beta=float(data["beta"]),
        d_cutoff=float(data["d_cutoff"]),
    )
    smoother.dt = float(data["dt"])  # exactly, not through 1 / (1 / dt)
    smoother._value = None if data["value"] is None else _array(data["value"])
    smoother._speed = None if data["speed"] is None else _array(data["speed"])
    return smoother


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
