"""Follow every face in a video, and choose which of them to act on ("which face").

A face swap in a scene with several people must replace one actor (or all of them) on every
frame, not whichever face the detector happens to list first: the choice is made once per
person and kept while that person stays in view. So each face gets a track that follows it from
frame to frame (a detector run in a small region around where it just was: ``tracker.search_near``),
and the choice is a property of the track:
 - ``all``: every face;
 - ``largest``: the largest face when the choice is made (the lead actor), kept while tracked;
 - ``index:N``: the N-th face counted from the left (from 0) when the choice is made;
 - ``reference``: the face whose identity embedding lies within ``threshold`` of a reference
   photo's (the dlib ResNet's 128-D space, where 0.6 separates people), the closest one if several.
A whole frame is scanned for new faces every ``rescan_every`` frames, and on every frame while
nothing is chosen (so a chosen face that appears is swapped from its first frame). Faces that are
not chosen are followed too, only by their box (no landmarks): cheap, and it keeps a reference
search from embedding the same bystander on every frame.

A detector can miss a face for a frame (motion blur, a quick turn): a chosen face that the
usual search misses is looked for once more, wider and with a lower score threshold, before it
is given up, since an unswapped frame flashes the original face. It is never assumed to be still
there without a detection: after a cut, landmarks fitted to whatever replaced the face would
paste a ghost face onto it. Landmarks of chosen faces go through a One-Euro filter per track, in
units of that face's size, so the swapped face neither shimmers nor lags.

Everything a track holds is plain numbers, so the tracks save and load with an engine's state.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from animatica.errors import AnimaticaError
from animatica.face import geometry as g
from animatica.face.analyzer import FaceAnalyzer, FaceBox, NoFaceError
from animatica.face.filters import OneEuroFilter
from animatica.face.tracker import search_near

Mode = Literal["all", "largest", "index", "reference"]
WHICH_HELP = "largest (default), all, index:N (N-th face from the left, from 0) or reference"
REFERENCE_THRESHOLD = 0.6  # dlib's own same-person distance


@dataclass(frozen=True)
class FaceChoice:
    mode: Mode = "largest"
    index: int = 0  # for ``index``

    @classmethod
    def parse(cls, text: str) -> "FaceChoice":
        """``largest``, ``all``, ``reference`` or ``index:N``; a clear error for anything else."""
        value = text.strip().lower()
        if value in ("largest", "all", "reference"):
            return cls(value)  # type: ignore[arg-type]
        if value.startswith("index:"):
            number = value.removeprefix("index:")
            if number.isdigit():
                return cls("index", int(number))
        raise AnimaticaError(f"Unknown face choice {text!r}: use {WHICH_HELP}.")

    def __str__(self) -> str:
        return f"index:{self.index}" if self.mode == "index" else self.mode


@dataclass
class Track:
    id: int
    box: FaceBox
    chosen: bool = False
    distance: float | None = None  # to the reference identity, when one is searched for
    checked_at: int = 0  # frame count when ``distance`` was measured
    missed: int = 0  # consecutive frames only the second, lenient look found the face
    size: float = 0.0  # face size (``geometry.face_size``) when landmarks were first placed
    smoother: OneEuroFilter | None = None
    points: np.ndarray | None = None  # the latest smoothed landmarks, frame pixels


@dataclass
class FaceTracks:
    """Tracks of the faces in one video; call it on each frame in order."""

    analyzer: FaceAnalyzer
    choice: FaceChoice = FaceChoice()
    reference: np.ndarray | None = None  # (128,) identity of the face to choose, for ``reference``
    threshold: float = REFERENCE_THRESHOLD
    smoothing: float = 0.5  # 0: raw landmarks; 1: the heaviest smoothing
    fps: float = 30.0
    rescan_every: int = 8
    verify_every: int = 15  # how often a bystander is embedded again while nobody is chosen
    roi_margin: float = 0.25
    min_score: float = -0.2
    # The second look for a chosen face the first one missed.
    lost_margin: float = 0.6
    lost_score: float = -0.5
    tracks: list[Track] = field(default_factory=list)
    count: int = 0
    next_id: int = 0

    def __post_init__(self) -> None:
        if self.choice.mode == "reference" and self.reference is None:
            raise AnimaticaError("Choosing faces by reference needs a reference photo (--reference).")
        if not 0.0 <= self.smoothing <= 1.0:
            raise AnimaticaError(f"Smoothing must be between 0 and 1, got {self.smoothing}.")

    def __call__(self, frame: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(track id, smoothed ``(68, 2)`` landmarks) of the chosen faces in this frame, left to right."""
        self.count += 1
        self._follow(frame)
        chosen_live = any(t.chosen for t in self.tracks)
        if not self.tracks or not chosen_live or (self.count - 1) % self.rescan_every == 0:
            self._rescan(frame)
        self._choose(frame)
        out = []
        for track in sorted(self.tracks, key=lambda t: t.box.left):
            if track.chosen:
                out.append((track.id, self._landmarks(frame, track)))
        return out

    def _follow(self, frame: np.ndarray) -> None:
        kept = []
        for track in self.tracks:
            box = search_near(
                self.analyzer, frame, track.box, margin=self.roi_margin, min_score=self.min_score
            )
            if box is None and track.chosen:
                box = search_near(
                    self.analyzer, frame, track.box, margin=self.lost_margin, min_score=self.lost_score
                )
                track.missed += 1
            else:
                track.missed = 0
            if box is not None:
                track.box = box
                kept.append(track)
        # Two tracks that ran onto one face: the older one (first in the list) stays.
        self.tracks = []
        for track in kept:
            if all(track.box.iou(other.box) < 0.5 for other in self.tracks):
                self.tracks.append(track)

    def _rescan(self, frame: np.ndarray) -> None:
        for box in self.analyzer.detect(frame):
            best = max(self.tracks, key=lambda t: t.box.iou(box), default=None)
            if best is not None and best.box.iou(box) > 0.3:
                continue
            self.tracks.append(Track(self.next_id, box))
            self.next_id += 1

    def _choose(self, frame: np.ndarray) -> None:
        mode = self.choice.mode
        if mode == "all":
            for track in self.tracks:
                track.chosen = True
            return
        if any(t.chosen for t in self.tracks) or not self.tracks:
            return
        pick: Track | None = None
        if mode == "largest":
            pick = max(self.tracks, key=lambda t: t.box.area)
        elif mode == "index":
            ordered = sorted(self.tracks, key=lambda t: t.box.left)
            pick = ordered[self.choice.index] if self.choice.index < len(ordered) else None
        else:
            pick = self._closest(frame)
        if pick is not None:
            pick.chosen = True

    def _closest(self, frame: np.ndarray) -> Track | None:
        assert self.reference is not None
        for track in self.tracks:
            stale = self.count - track.checked_at >= self.verify_every
            if track.distance is None or (stale and track.missed == 0):
                embedding = self.analyzer.embedding(frame, track.box)
                track.distance = float(np.linalg.norm(embedding - self.reference))
                track.checked_at = self.count
        near = [t for t in self.tracks if t.distance is not None and t.distance < self.threshold]
        return min(near, key=lambda t: t.distance or 0.0, default=None)

    def _landmarks(self, frame: np.ndarray, track: Track) -> np.ndarray:
        points = self.analyzer.landmarks(frame, track.box).astype(np.float64)
        if track.smoother is None or track.size <= 0:
            track.size = max(g.face_size(points), 1.0)
            track.smoother = self._new_smoother()
        if track.smoother is not None:
            points = track.smoother(points / track.size) * track.size
        track.points = points
        return points

    def _new_smoother(self) -> OneEuroFilter | None:
        if self.smoothing <= 0:
            return None
        # smoothing 0.5 -> 1 Hz minimum cutoff, 1 -> 0.1 Hz; fast motions open it up.
        return OneEuroFilter(rate=self.fps, min_cutoff=10 ** (1 - 2 * self.smoothing), beta=8.0)


def reference_embedding(
    image: np.ndarray, analyzer: FaceAnalyzer, what: str = "the reference photo"
) -> np.ndarray:
    """The identity to look for: the embedding of the one clear face in ``image``."""
    return analyzer.embedding(image, single_face(image, analyzer, what))


def single_face(image: np.ndarray, analyzer: FaceAnalyzer, what: str) -> FaceBox:
    """The face in a photo of one person; refused when there is none, or when a second face is so
    large that which one is meant cannot be told (a small face in the background is ignored)."""
    faces = analyzer.detect(image, thorough=True)
    if not faces:
        raise NoFaceError(f"No face was found in {what}: use a photo with one clearly visible face.")
    if len(faces) > 1 and faces[1].area >= 0.25 * faces[0].area:
        raise AnimaticaError(
            f"{what[0].upper()}{what[1:]} shows {len(faces)} faces: use a photo of one person, "
            "or crop it to the face you mean."
        )
    return faces[0]


FACE_CHECKS_PER_SECOND = 2  # video frames searched for a face before a swap starts


def require_face_in_video(analyzer: FaceAnalyzer, frames: Iterable[np.ndarray], fps: float | None) -> None:
    """Refuse a video in which no face shows at all (`NoFaceError`), before a frame is rendered: a
    swap that returns the video unchanged would cost its owner the wait and a credit for nothing.

    Two frames a second are searched, stopping at the first face (the first frame, for most
    videos); a face in view for under half a second only can be missed.
    """
    step = max(1, round((fps or 25.0) / FACE_CHECKS_PER_SECOND))
    looked = 0
    for index, frame in enumerate(frames):
        if index % step:
            continue
        looked += 1
        if analyzer.detect(frame):
            return
    if looked:
        raise NoFaceError(
            "No face was found anywhere in the video, so there is nothing to swap: use a video in "
            "which the face to replace is clearly visible."
        )


def tracks_to_dict(tracks: FaceTracks) -> dict[str, Any]:
    """The tracks' memory as plain data (boxes, choices, smoothers); settings are the engine's."""
    from animatica.engines.landmarks import _box_to_dict, _smoother_to_dict, _tensor

    return {
        "count": int(tracks.count),
        "next_id": int(tracks.next_id),
        "tracks": [
            {
                "id": int(t.id),
                "box": _box_to_dict(t.box),
                "chosen": bool(t.chosen),
                "distance": None if t.distance is None else float(t.distance),
                "checked_at": int(t.checked_at),
                "missed": int(t.missed),
                "size": float(t.size),
                "smoother": None if t.smoother is None else _smoother_to_dict(t.smoother),
                "points": None if t.points is None else _tensor(t.points),
            }
            for t in tracks.tracks
        ],
    }


def load_tracks(tracks: FaceTracks, data: dict[str, Any]) -> FaceTracks:
    """``tracks`` (fresh, with the engine's settings) given the memory ``tracks_to_dict`` saved."""
    from animatica.engines.landmarks import _array, _box_from_dict, _smoother_from_dict

    tracks.count = int(data["count"])
    tracks.next_id = int(data["next_id"])
    tracks.tracks = []
    for t in data["tracks"]:
        box = _box_from_dict(t["box"])
        if box is None:
            raise ValueError("a face track without a box")
        tracks.tracks.append(
            Track(
                id=int(t["id"]),
                box=box,
                chosen=bool(t["chosen"]),
                distance=None if t["distance"] is None else float(t["distance"]),
                checked_at=int(t["checked_at"]),
                missed=int(t["missed"]),
                size=float(t["size"]),
                smoother=None if t["smoother"] is None else _smoother_from_dict(t["smoother"]),
                points=None if t["points"] is None else _array(t["points"]),
            )
        )
    return tracks
