"""Cross-identity evaluation: animate one person's photo with another person's clip, against ground truth.

Reconstruction (``evaluate.py``) drives a photo with its own clip, so a model that copies the
driving frame scores perfectly there. A synthetic faces dataset (``cross/`` of ``animatica data
synth --kind faces``) renders person A with the expression and pose of every frame of person B's
clip, which is what animating A's photo with B's clip should give; here each engine is compared
with that truth, beside two baselines that any useful engine must beat: copying the source photo
(right identity, no motion) and copying the driving frame (right motion, wrong identity).

Protocol (recorded in every report):

- Source: A's neutral frame (``test/A#c00/00000.png``); driving: B's clip; motion relative to the
  first driving frame, as the engines animate by default (every clip starts neutral and frontal, so
  relative motion is the absolute motion the truth was rendered with).
- Frames are fitted to the engine's frame size as ``animatica animate`` fits them and its output is
  resized back, so every engine is scored at the dataset's resolution.
- The baselines are frame sequences scored by the same code as the engine's output; an engine
  that copies its source therefore scores exactly what the copy-source baseline scores.
- L1: mean absolute difference with the truth on [0, 1] pixels; every frame weighs the same.
- Faces: the HOG detector on each frame enlarged to at least ``detect_side`` pixels (the dataset's
  64-pixel faces are below its 80-pixel window). A frame's face is found when a detection overlaps
  the box where the truth's face is known to be: around the renderer's landmarks of the truth
  frame (``params/cross/``) when the dataset has them, else around A's neutral landmarks moved by
  B's motion. The 68 landmarks are placed in the frame's own detected box, or in the known box
  when none was found (those frames are counted in ``no_face_rate``); the toolkit enlarges small
  faces itself before placing them. The frame's own box matters: a box that followed the truth
  would tell the predictor where the truth's face is and make even a still image seem to move.
  ``truth_landmark_error`` compares the toolkit's landmarks on the truth with the renderer's.
- Landmark distance: mean over the 68 points of the distance to the truth's landmarks, in percent
  of the truth's inter-ocular distance (outer eye corners), averaged over frames.
- Identity distance: dlib's 128-D identity embedding, L2 distance to the truth's, on
  ``identity_frames`` frames evenly spread over each clip (an embedding costs about 0.15 s on a CPU
  core); about 0.6 separates people.
- Expression correlation: the expression reader (``faces/regressor.py``, a small network trained
  on the training split of another seed) reads the mouth opening and the yaw from every output
  frame; Pearson correlation over the frames of a pair with the parameters the truth was rendered
  with (the driving clip's ``mouth_open`` and ``yaw``), averaged over the two, then over pairs. An
  output that does not move correlates 0; a pair whose truth does not move in a parameter leaves
  it out. ``reader_check`` is the same figure for the truth frames: the measure's ceiling.
- Landmark expression correlation (``landmark_*``): the same from the landmarks, the mouth opening
  (inner-lip gap over the inter-ocular distance) and a yaw proxy (the nose tip's offset from the
  middle of the jaw's ends, over the jaw's width), output vs truth. The landmarks read 64-pixel
  faces weakly; ``measure_check`` correlates the truth's landmark measures with the rendered
  parameters, the ceiling of this measure.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from animatica.engines.base import Engine
from animatica.errors import AnimaticaError
from animatica.face import geometry as g
from animatica.face.analyzer import FaceAnalyzer, FaceBox, get_analyzer
from animatica.media.fit import fit_frame
from animatica.training.datasets import read_video
from animatica.training.errors import DatasetError
from animatica.training.faces.regressor import ExpressionReader, shipped_reader

# The methods scored, each by the prefix of its keys in the report: the engine's own keys are bare.
METHODS = {"engine": "", "source": "baseline_source_", "driving": "baseline_driving_"}
DETECT_SIDE = 256
FOUND_IOU = 0.3  # a detection overlapping the known face box at least this much is the face
IDENTITY_FRAMES = 8
MIN_SPREAD = 1e-6  # a measure varying less than this over a clip does not move
# The parameters the expression reader reads, by the name of their correlation.
READ_PARAMETERS = {"mouth": "mouth_open", "yaw": "yaw"}


@dataclass(frozen=True)
class CrossPair:
    """One entry of ``cross/index.json``, with paths resolved against the dataset folder."""

    name: str  # the truth clip's folder name, ``A__B#clip``
    source: Path
    source_person: str
    driving: Path
    driving_person: str
    truth: Path


@dataclass(frozen=True)
class CrossDataset:
    root: Path
    pairs: list[CrossPair]
    info: dict[str, Any]  # dataset.json, or {} when absent


def read_cross_dataset(data: Path) -> CrossDataset:
    """The pairs of a faces dataset; a ``DatasetError`` saying what to do when there are none."""
    root = Path(data)
    index = root / "cross" / "index.json"
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    if not index.is_file():
        raise DatasetError(
            f"{root} has no cross-identity ground truth (cross/index.json): make a faces dataset with "
            "`animatica data synth --kind faces --out DIR`, and pass DIR"
        )
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))["pairs"]
        pairs = [
            CrossPair(
                name=Path(e["truth"]).name,
                source=root / e["source"],
                source_person=str(e["source_person"]),
                driving=root / e["driving"],
                driving_person=str(e["driving_person"]),
                truth=root / e["truth"],
            )
            for e in entries
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{index} cannot be read as a list of pairs ({exc!r})") from exc
    if not pairs:
        raise DatasetError(f"{index} lists no pairs")
    info_path = root / "dataset.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    return CrossDataset(root, pairs, info)


# ---------------------------------------------------------------- measures on landmarks and frames


def l1_per_frame(frames: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean absolute difference of each frame with its truth, on [0, 1] pixels: ``(T,)``."""
    if frames.shape != truth.shape:
        raise ValueError(f"frames {frames.shape} and truth {truth.shape} differ in shape")
    diff = np.abs(frames.astype(np.int16) - truth.astype(np.int16))
    return diff.reshape(len(frames), -1).mean(axis=1) / 255.0


def interocular(points: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners of ``(..., 68, 2)`` landmarks: ``(...)``."""
    return np.linalg.norm(points[..., 45, :] - points[..., 36, :], axis=-1)


def landmark_distance(points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean point distance of ``(T, 68, 2)`` landmarks to the truth's, in % of the truth's IOD: ``(T,)``."""
    distances = np.linalg.norm(points - truth, axis=-1).mean(axis=-1)
    return 100.0 * distances / np.maximum(interocular(truth), 1e-6)


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap over the inter-ocular distance, so that it does not depend on the face's size."""
    upper, lower = points[..., g.MOUTH_PAIRS[:, 0], :], points[..., g.MOUTH_PAIRS[:, 1], :]
    gap = np.linalg.norm(lower - upper, axis=-1).mean(axis=-1)
    return gap / np.maximum(interocular(points), 1e-6)


def yaw_proxy(points: np.ndarray) -> np.ndarray:
    """How far the nose tip sits from the middle of the jaw's ends, over the jaw's width.

    0 for a frontal face; a turned head brings the nose towards one cheek, so the sign follows the
    direction of the turn.
    """
    left, right = points[..., 0, 0], points[..., 16, 0]
    middle = (left + right) / 2
    return (points[..., 30, 0] - middle) / np.maximum(np.abs(right - left), 1e-6)


def correlation(values: np.ndarray, truth: np.ndarray) -> float | None:
    """Pearson correlation of a measure with the truth's over frames.

    ``None`` when the truth does not move (nothing to follow); 0 when the values do not (a still
    image follows nothing).
    """
    values, truth = np.asarray(values, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if truth.std() < MIN_SPREAD:
        return None
    if values.std() < MIN_SPREAD:
        return 0.0
    return float(np.corrcoef(values, truth)[0, 1])


def expression_measures(points: np.ndarray) -> dict[str, np.ndarray]:
    return {"mouth": mouth_opening(points), "yaw": yaw_proxy(points)}


def identity_indices(frames: int, count: int = IDENTITY_FRAMES) -> np.ndarray:
    """``count`` frame indices evenly spread over a clip (all of them for a short clip)."""
    if frames <= count:
        return np.arange(frames)
    return np.unique(np.linspace(0, frames - 1, count).round().astype(int))


# ---------------------------------------------------------------- the faces in a sequence of frames


@dataclass
class FaceTrack:
    """What the face toolkit sees in a sequence of frames."""

    landmarks: np.ndarray  # (T, 68, 2)
    found: np.ndarray  # (T,) bool: a face where the truth's face is
    embeddings: np.ndarray  # (K, 128) at the pair's identity frames


def known_boxes(source_points: np.ndarray, driving_points: np.ndarray) -> list[FaceBox]:
    """Where A's face is in each truth frame: A's neutral landmarks moved by B's motion.

    B's landmark displacements from its first frame are scaled by the ratio of the two faces'
    inter-ocular distances; a box needs no more accuracy than that.
    """
    scale = interocular(source_points) / max(float(interocular(driving_points[0])), 1e-6)
    moved = source_points[None] + (driving_points - driving_points[:1]) * scale
    return [FaceBox.around(points) for points in moved]


def _enlarged(frame: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    factor = max(1, math.ceil(side / max(frame.shape[:2])))
    if factor == 1:
        return frame, 1.0
    h, w = frame.shape[:2]
    return np.asarray(Image.fromarray(frame).resize((w * factor, h * factor), Image.BICUBIC)), float(factor)


def _detected(boxes: list[FaceBox], known: FaceBox) -> FaceBox | None:
    """The detected face overlapping ``known`` most; ``None`` if none overlaps it enough."""
    best = max(boxes, key=known.iou, default=None)
    return best if best is not None and known.iou(best) >= FOUND_IOU else None


def _digest(frame: np.ndarray) -> bytes:
    digest = hashlib.blake2b(str(frame.shape).encode(), digest_size=16)
    digest.update(np.ascontiguousarray(frame).data)
    return digest.digest()


def face_track(
    frames: np.ndarray,
    known: Sequence[FaceBox],
    identity_at: np.ndarray,
    analyzer: FaceAnalyzer,
    detect_side: int = DETECT_SIDE,
    cache: dict | None = None,
) -> FaceTrack:
    """Landmarks (in the frames' pixels), found faces and embeddings of ``frames``.

    Everything is done on the frame enlarged (bicubic) to at least ``detect_side`` pixels: the
    detector needs it, and on 64-pixel frames the landmarks read the mouth's opening markedly
    better from the enlarged frame than from the toolkit's own bilinear resampling.
    ``cache`` (a dict shared by the tracks of one pair) keeps what was computed for a frame seen
    before: the copy-source baseline shows one picture all along, and the toolkit's answers depend
    only on the picture and the box, so they are computed once.
    """
    cache = {} if cache is None else cache
    landmarks, found, embeddings = [], [], []
    wanted = set(identity_at.tolist())
    for index, (frame, box) in enumerate(zip(frames, known, strict=True)):
        work, factor = _enlarged(frame, detect_side)
        digest = _digest(frame)
        if ("detect", digest) not in cache:
            cache["detect", digest] = analyzer.detect(work)
        known_box = box.scaled(factor)
        detected = _detected(cache["detect", digest], known_box)
        use = detected or known_box
        key = (digest, use.left, use.top, use.right, use.bottom)
        if ("landmarks", key) not in cache:
            cache["landmarks", key] = (analyzer.landmarks(work, use) + 0.5) / factor - 0.5
        found.append(detected is not None)
        landmarks.append(cache["landmarks", key])
        if index in wanted:
            if ("embedding", key) not in cache:
                cache["embedding", key] = analyzer.embedding(work, use)
            embeddings.append(cache["embedding", key])
    return FaceTrack(np.stack(landmarks), np.array(found), np.stack(embeddings))


# ---------------------------------------------------------------- scores


@dataclass
class MethodScores:
    """One method's figures on one pair, per frame where they are per frame."""

    l1: np.ndarray
    landmark: np.ndarray
    found: np.ndarray
    identity: np.ndarray
    correlations: dict[str, float | None]  # the reader's, by "mouth" and "yaw"
    landmark_correlations: dict[str, float | None]  # the landmark measures', by "mouth" and "yaw"

    def row(self) -> dict[str, Any]:
        return {
            "l1": float(self.l1.mean()),
            "landmark_distance": float(self.landmark.mean()),
            "no_face_rate": float(1.0 - self.found.mean()),
            "identity_distance": float(self.identity.mean()),
            "expression_correlation": _mean_or_none(list(self.correlations.values())),
            **{f"{name}_correlation": value for name, value in self.correlations.items()},
            "landmark_expression_correlation": _mean_or_none(list(self.landmark_correlations.values())),
            **{f"landmark_{name}_correlation": v for name, v in self.landmark_correlations.items()},
        }


def reader_correlations(
    reader: ExpressionReader, frames: np.ndarray, params: dict[str, np.ndarray]
) -> dict[str, float | None]:
    """The reader's mouth opening and yaw of ``frames`` correlated with the rendered ``params``
    (``{"mouth": ..., "yaw": ...}``, one value per frame)."""
    read = reader.read(frames)
    return {name: correlation(read[key], params[name]) for name, key in READ_PARAMETERS.items()}


def score_method(
    frames: np.ndarray,
    track: FaceTrack,
    truth: np.ndarray,
    truth_track: FaceTrack,
    reader: ExpressionReader,
    params: dict[str, np.ndarray],
) -> MethodScores:
    truth_measures = expression_measures(truth_track.landmarks)
    measures = expression_measures(track.landmarks)
    return MethodScores(
        l1=l1_per_frame(frames, truth),
        landmark=landmark_distance(track.landmarks, truth_track.landmarks),
        found=track.found,
        identity=np.linalg.norm(track.embeddings - truth_track.embeddings, axis=-1),
        correlations=reader_correlations(reader, frames, params),
        landmark_correlations={name: correlation(measures[name], truth_measures[name]) for name in measures},
    )


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


@dataclass
class PairResult:
    pair: CrossPair
    scores: dict[str, MethodScores]  # by METHODS key
    truth_found: np.ndarray
    measure_check: dict[str, float | None]
    reader_check: dict[str, float | None]
    engine_seconds: float
    frames: int
    # Per frame: the toolkit's landmarks on the truth vs the renderer's own, in % IOD (when known).
    truth_reading: np.ndarray | None = None

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pair": self.pair.name,
            "source_person": self.pair.source_person,
            "driving_person": self.pair.driving_person,
            "frames": self.frames,
        }
        for method, prefix in METHODS.items():
            out.update({prefix + key: value for key, value in self.scores[method].row().items()})
        out["truth_no_face_rate"] = float(1.0 - self.truth_found.mean())
        out["truth_landmark_error"] = None if self.truth_reading is None else float(self.truth_reading.mean())
        out["measure_check"] = self.measure_check
        out["reader_check"] = self.reader_check
        return out


def summarize(results: Sequence[PairResult]) -> dict[str, Any]:
    """Frame-weighted means of per-frame figures, pair means of correlations, for every method."""
    out: dict[str, Any] = {}
    for method, prefix in METHODS.items():
        scores = [r.scores[method] for r in results]
        out[prefix + "l1"] = float(np.concatenate([s.l1 for s in scores]).mean())
        out[prefix + "landmark_distance"] = float(np.concatenate([s.landmark for s in scores]).mean())
        out[prefix + "no_face_rate"] = float(1.0 - np.concatenate([s.found for s in scores]).mean())
        out[prefix + "identity_distance"] = float(np.concatenate([s.identity for s in scores]).mean())
        for kind in ("", "landmark_"):
            field = "landmark_correlations" if kind else "correlations"
            per_pair = [getattr(s, field) for s in scores]
            for name in ("mouth", "yaw"):
                out[f"{prefix}{kind}{name}_correlation"] = _mean_or_none([c[name] for c in per_pair])
            out[f"{prefix}{kind}expression_correlation"] = _mean_or_none(
                [_mean_or_none(list(c.values())) for c in per_pair]
            )
    out["truth_no_face_rate"] = float(1.0 - np.concatenate([r.truth_found for r in results]).mean())
    readings = [r.truth_reading for r in results if r.truth_reading is not None]
    out["truth_landmark_error"] = float(np.concatenate(readings).mean()) if readings else None
    out["l1_ratio"] = out["l1"] / max(min(out["baseline_source_l1"], out["baseline_driving_l1"]), 1e-12)
    for key in ("measure_check", "reader_check"):
        out[key] = {
            name: _mean_or_none([getattr(r, key)[name] for r in results]) for name in ("mouth", "yaw")
        }
    return out


# ---------------------------------------------------------------- running an engine on a pair


def animate_pair(engine: Engine, source: np.ndarray, driving: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """``source`` animated by ``driving`` (relative to its first frame), at the source's size."""
    size = source.shape[:2]
    if engine.frame_size is not None:
        source = fit_frame(source, engine.frame_size)
        driving = np.stack([fit_frame(f, engine.frame_size) for f in driving])
    state = engine.prepare(source, driving[0])
    chunks = [engine.animate(state, driving[i : i + batch_size]) for i in range(0, len(driving), batch_size)]
    out = np.concatenate(chunks)
    if out.shape[1:3] != size:
        out = np.stack([fit_frame(np.ascontiguousarray(f), size) for f in out])
    return out


def _read_params(root: Path, clip: Path) -> dict[str, Any]:
    """The renderer's parameters of a clip (``params/<split>/<clip>.json``)."""
    path = root / "params" / clip.parent.name / f"{clip.name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"the parameters of {clip.name} cannot be read from {path} ({exc})") from exc


def _truth_landmarks(root: Path, pair: CrossPair, frames: int) -> np.ndarray | None:
    """The renderer's landmarks of the truth frames, when the dataset has them (``params/cross/``)."""
    path = root / "params" / "cross" / f"{pair.name}.json"
    if not path.is_file():
        return None
    points = np.asarray(_read_params(root, pair.truth)["landmarks"], dtype=np.float64)
    if points.shape != (frames, 68, 2):
        raise DatasetError(f"{path} holds landmarks of shape {points.shape}, not ({frames}, 68, 2)")
    return points


def evaluate_pair(
    engine: Engine,
    dataset: CrossDataset,
    pair: CrossPair,
    analyzer: FaceAnalyzer,
    batch_size: int = 8,
    identity_frames: int = IDENTITY_FRAMES,
    detect_side: int = DETECT_SIDE,
    reader: ExpressionReader | None = None,
) -> tuple[PairResult, dict[str, np.ndarray]]:
    """One pair's scores, and its frames by method (plus ``truth`` and ``driving``) for videos;
    ``reader`` reads the expression (the shipped expression reader when None)."""
    reader = reader or shipped_reader()
    truth = _frames(pair.truth)
    driving = _frames(pair.driving)
    source = _frames(pair.source)[0]
    if len(driving) != len(truth) or driving.shape[1:] != truth.shape[1:] or source.shape != truth.shape[1:]:
        raise DatasetError(
            f"pair {pair.name}: the source {source.shape}, driving {driving.shape} and truth {truth.shape} "
            "do not match (same frame size and count expected)"
        )
    started = time.perf_counter()
    generated = animate_pair(engine, source, driving, batch_size)
    seconds = time.perf_counter() - started
    driving_params = _read_params(dataset.root, pair.driving)
    truth_points = _truth_landmarks(dataset.root, pair, len(truth))
    if truth_points is not None:
        boxes = [FaceBox.around(points) for points in truth_points]
    else:
        boxes = known_boxes(
            np.asarray(_read_params(dataset.root, pair.source.parent)["landmarks"][0], dtype=np.float64),
            np.asarray(driving_params["landmarks"], dtype=np.float64)[: len(truth)],
        )
    identity_at = identity_indices(len(truth), identity_frames)
    cache: dict = {}
    truth_track = face_track(truth, boxes, identity_at, analyzer, detect_side, cache)
    frames = {"engine": generated, "source": np.repeat(source[None], len(truth), axis=0), "driving": driving}
    params = {
        name: np.array([f[key] for f in driving_params["frames"][: len(truth)]], dtype=np.float64)
        for name, key in READ_PARAMETERS.items()
    }
    scores = {
        method: score_method(
            frames[method], face_track(frames[method], boxes, identity_at, analyzer, detect_side, cache),
            truth, truth_track, reader, params,
        )
        for method in METHODS
    }  # fmt: skip
    truth_measures = expression_measures(truth_track.landmarks)
    check = {name: correlation(truth_measures[name], params[name]) for name in params}
    reader_check = reader_correlations(reader, truth, params)
    reading = None if truth_points is None else landmark_distance(truth_track.landmarks, truth_points)
    result = PairResult(pair, scores, truth_track.found, check, reader_check, seconds, len(truth), reading)
    return result, {**frames, "truth": truth}


def _frames(path: Path) -> np.ndarray:
    """A clip folder's PNG frames, or one PNG, at their own size."""
    if path.is_file():
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))[None]
    if not path.is_dir():
        raise DatasetError(f"{path} is missing from the dataset")
    first = next(iter(sorted(path.glob("*.png"))), None)
    if first is None:
        raise DatasetError(f"{path} holds no PNG frames")
    with Image.open(first) as image:
        width, height = image.size
    return read_video(path, (height, width))


def evaluate_cross_identity(
    engine: Engine,
    data: Path,
    *,
    checkpoint: str | None = None,
    json_out: Path | None = None,
    videos_out: Path | None = None,
    max_pairs: int | None = None,
    batch_size: int = 8,
    identity_frames: int = IDENTITY_FRAMES,
    detect_side: int = DETECT_SIDE,
    fps: float = 25.0,
    analyzer: FaceAnalyzer | None = None,
    reader: ExpressionReader | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score ``engine`` on the cross-identity pairs of the faces dataset ``data``; returns the report.

    ``checkpoint`` is only recorded (the engine is loaded with it already). ``videos_out`` gets one
    video per pair: source | driving | output | truth. A pair the engine cannot animate (no face
    found in its source, say) is left out of every figure, the baselines' included, so all methods
    are compared on the same pairs; it is listed under ``failed_pairs`` with the engine's message.
    """
    from animatica.live.stats import cpu_summary
    from animatica.training.evaluate import _write_json, _write_side_by_side_frames

    if max_pairs is not None and max_pairs < 1:
        raise AnimaticaError(f"--max-pairs must be at least 1, not {max_pairs}")
    dataset = read_cross_dataset(data)
    analyzer = analyzer or get_analyzer("hog")
    reader = reader or shipped_reader()
    pairs = dataset.pairs if max_pairs is None else dataset.pairs[:max_pairs]
    if videos_out is not None:
        Path(videos_out).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: list[PairResult] = []
    failed: list[dict[str, str]] = []
    for index, pair in enumerate(pairs):
        try:
            result, frames = evaluate_pair(
                engine, dataset, pair, analyzer, batch_size, identity_frames, detect_side, reader
            )
        except DatasetError:
            raise
        except AnimaticaError as exc:
            failed.append({"pair": pair.name, "error": str(exc)})
        else:
            results.append(result)
            if videos_out is not None:
                strip = [frames[k] for k in ("source", "driving", "engine", "truth")]
                path = Path(videos_out) / f"{pair.name}.mp4"
                _write_side_by_side_frames(path, np.concatenate(strip, axis=2), fps)
        if on_progress is not None:
            on_progress(index + 1, len(pairs))
    if not results:
        raise AnimaticaError(
            f"the {engine.name} engine could not animate any of the {len(pairs)} pairs; the first said: "
            f"{failed[0]['error']}"
        )
    frames_total = sum(r.frames for r in results)
    engine_seconds = sum(r.engine_seconds for r in results)
    report: dict[str, Any] = {
        "engine": engine.name,
        "checkpoint": checkpoint,
        "data": str(dataset.root),
        "seed": dataset.info.get("seed"),
        "size": dataset.info.get("size"),
        "pairs": len(results),
        "frames": frames_total,
        **summarize(results),
        "failed_pairs": failed,
        "engine_ms_per_frame": 1000.0 * engine_seconds / frames_total,
        "seconds": time.perf_counter() - started,
        "machine": cpu_summary(),
        "protocol": PROTOCOL | {"identity_frames": identity_frames, "detect_side": detect_side},
        "rows": [r.row() for r in results],
    }
    if json_out is not None:
        _write_json(Path(json_out), report)
    return report


PROTOCOL = {
    "mode": "cross-identity: A's neutral frame animated by B's clip, motion relative to its first frame",
    "truth": "the renderer's A with B's expression and pose, frame by frame",
    "baselines": "baseline_source_*: the source photo every frame; baseline_driving_*: the driving frame",
    "l1": "mean |output - truth| on [0, 1] pixels, every frame weighing the same",
    "landmark_distance": "dlib 68 landmarks, mean point distance to the truth's, % of the truth's "
    "inter-ocular distance (outer eye corners)",
    "no_face_rate": "frames where the HOG detector (frames enlarged to detect_side) finds no face "
    "overlapping the truth's known face box",
    "identity_distance": "dlib identity embedding L2 distance to the truth's, on identity_frames evenly "
    "spread frames per pair",
    "expression_correlation": "Pearson over frames of the expression reader's mouth opening and yaw of "
    "the output vs the rendered mouth_open and yaw of the truth, averaged over the two, then over pairs; "
    "a still output scores 0",
    "landmark_expression_correlation": "Pearson over frames, output vs truth, of the landmarks' mouth "
    "opening (inner-lip gap / inter-ocular distance) and a yaw proxy (nose tip offset from the jaw ends' "
    "middle / jaw width), averaged over the two, then over pairs",
    "reader_check": "the expression reader on the truth frames vs their rendered mouth_open and yaw",
    "measure_check": "the truth's landmark measures vs the driving clip's rendered mouth_open and yaw",
    "truth_landmark_error": "the toolkit's landmarks on the truth vs the renderer's own (params/cross), "
    "% inter-ocular distance: how well the landmarks read these faces",
    "l1_ratio": "l1 / the better baseline's l1",
}
