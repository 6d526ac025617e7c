"""Reconstruction evaluation: drive each test clip's first frame with the clip itself.

Protocol (recorded in every JSON report): frame 0 of each clip is the source; every frame,
frame 0 included, is a driving frame, with absolute keypoints as in the reference's
reconstruction mode; the generated frame is compared with the real one. Metrics are averaged
over all frames of all clips (each frame weighs the same). The no-motion baseline, which simply
repeats frame 0, is measured the same way beside the model, so a number can be read as "how much
of the motion the model explains". Faces (``faces=True``) use the face toolkit's landmarks for
AKD/MKR and its identity embedding for AED; other data use the model's own keypoints.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from animatica.device import resolve_device
from animatica.fomm import config as fomm_config
from animatica.fomm.checkpoint import (
    config_for_checkpoint,
    load_state_strict,
    read_checkpoint,
    resolve_checkpoint,
)
from animatica.fomm.generator import OcclusionAwareGenerator
from animatica.fomm.keypoint_detector import KPDetector
from animatica.training import metrics
from animatica.training.datasets import FramesDataset


class _Model:
    """The two inference networks of a checkpoint, in eval mode on one device."""

    def __init__(
        self,
        checkpoint: str | Path,
        config: str | Path | None,
        device: str,
        checkpoints_dir: Path | None = None,
    ):
        path = resolve_checkpoint(checkpoint, checkpoints_dir)
        data = read_checkpoint(path)
        self.cfg = config_for_checkpoint(data, path, config)
        self.device = resolve_device(device)
        self.kp_detector = KPDetector(**fomm_config.kp_detector_kwargs(self.cfg))
        self.generator = OcclusionAwareGenerator(**fomm_config.generator_kwargs(self.cfg))
        load_state_strict(self.kp_detector, data["kp_detector"], "keypoint detector", path)
        load_state_strict(self.generator, data["generator"], "generator", path)
        self.kp_detector.eval().to(self.device)
        self.generator.eval().to(self.device)

    def tensor(self, frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float() / 255.0


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return images.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class _Totals:
    """Running sums for one method (model or baseline) over frames and keypoints."""

    def __init__(self) -> None:
        self.frames = 0
        self.l1 = 0.0
        self.kp_distance = 0.0
        self.kp_count = 0
        self.missing = 0
        self.detected = 0

    def add(
        self, generated: np.ndarray, real: np.ndarray, kp: tuple, kp_real: tuple, size: tuple[int, int]
    ) -> None:
        self.frames += len(real)
        self.l1 += metrics.l1_sum(generated, real)
        distances = metrics.keypoint_distances(kp[0], kp_real[0], *size)
        self.kp_distance += float(distances.sum())
        self.kp_count += distances.size
        missing, detected = metrics.missing_count(kp_real[1], kp[1])
        self.missing += missing
        self.detected += detected

    def result(self) -> dict[str, float | None]:
        return {
            "l1": self.l1 / self.frames,
            "akd": self.kp_distance / self.kp_count,
            "mkr": self.missing / self.detected if self.detected else None,
        }


def _face_scores(generated: list[np.ndarray], real: list[np.ndarray]) -> dict[str, float | None]:
    from animatica.face.metrics import face_metrics

    scores = face_metrics(generated, real, with_identity=True)

    def clean(x: float | None) -> float | None:
        return None if x is None or math.isnan(x) else x

    return {"akd": clean(scores.akd), "mkr": clean(scores.mkr), "aed": clean(scores.aed)}


def evaluate(
    checkpoint: str | Path,
    data: Path,
    json_out: Path | None = None,
    videos_out: Path | None = None,
    config: str | Path | None = None,
    device: str = "auto",
    faces: bool = False,
    max_videos: int | None = None,
    batch_size: int = 16,
    fps: float = 25.0,
    on_progress: Callable[[int, int], None] | None = None,
    checkpoints_dir: Path | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on the clips in ``data`` (or ``data/test``); returns the report dict.

    ``videos_out`` gets one side-by-side video per clip: real | no-motion baseline | model.
    A bare checkpoint name is looked up among the shipped ones and in ``checkpoints_dir``.
    """
    model = _Model(checkpoint, config, device, checkpoints_dir)
    size = fomm_config.frame_size(model.cfg)
    dataset = FramesDataset(Path(data), frame_shape=size, is_train=False)
    count = len(dataset) if max_videos is None else min(max_videos, len(dataset))
    if videos_out is not None:
        Path(videos_out).mkdir(parents=True, exist_ok=True)
    ours, baseline = _Totals(), _Totals()
    face_rows: list[dict[str, Any]] = []
    per_video = []
    for index in range(count):
        item = dataset[index]
        clip_ours, clip_base = _Totals(), _Totals()
        generated_all = _reconstruct(model, item["video"], batch_size, size, (clip_ours, clip_base))
        for total, clip in ((ours, clip_ours), (baseline, clip_base)):
            for name in ("frames", "l1", "kp_distance", "kp_count", "missing", "detected"):
                setattr(total, name, getattr(total, name) + getattr(clip, name))
        row: dict[str, Any] = {
            "name": item["name"],
            "frames": clip_ours.frames,
            "model": clip_ours.result(),
            "baseline": clip_base.result(),
        }
        if faces:
            repeated = [item["video"][0]] * len(item["video"])
            row["face_model"] = _face_scores(list(generated_all), list(item["video"]))
            row["face_baseline"] = _face_scores(repeated, list(item["video"]))
            face_rows.append(row)
        per_video.append(row)
        if videos_out is not None:
            _write_side_by_side(Path(videos_out) / f"{item['name']}.mp4", item["video"], generated_all, fps)
        if on_progress is not None:
            on_progress(index + 1, count)
    summary: dict[str, Any] = {
        "videos": count,
        "frames": ours.frames,
        "model": ours.result(),
        "baseline": baseline.result(),
    }
    summary["l1_ratio"] = summary["model"]["l1"] / max(summary["baseline"]["l1"], 1e-12)
    summary["akd_ratio"] = summary["model"]["akd"] / max(summary["baseline"]["akd"], 1e-12)
    if faces:
        summary["face_model"] = _face_mean([r["face_model"] for r in face_rows])
        summary["face_baseline"] = _face_mean([r["face_baseline"] for r in face_rows])
    summary["warnings"] = _warnings(summary, faces, size)
    report = {
        "checkpoint": str(checkpoint),
        "data": str(dataset.folder),
        "protocol": {
            "mode": "reconstruction: frame 0 is the source, every frame drives it with absolute keypoints",
            "frame_size": list(size),
            "l1": "mean |generated - real| on [0, 1] pixels, averaged over all frames",
            "akd": "face landmarks (pixels)"
            if faces
            else "model keypoints, generated vs real frame (pixels)",
            "mkr": (
                "frames whose real face is found but generated face is missed"
                if faces
                else f"keypoints with heatmap spread <= {metrics.DETECTED_SPREAD} of the side in the real "
                "frame but not in the generated frame"
            ),
            "aed": "dlib identity embedding L2 distance" if faces else None,
            "baseline": "no motion: frame 0 repeated",
        },
        "summary": summary,
        "videos": per_video,
    }
    if json_out is not None:
        _write_json(Path(json_out), report)
    return report


def _warnings(summary: dict[str, Any], faces: bool, size: tuple[int, int]) -> list[str]:
    """Say when the figures describe a model that does not animate, which the ratios alone hide.

    Without faces, AKD and MKR use the model's own keypoints. A collapsed keypoint detector puts
    them in the same place whatever the frame, so the model's AKD is near 0 and looks excellent
    while the model copies the source; the baseline's AKD, the keypoints' own movement between
    real frames, gives that away.
    """
    out = []
    if summary["l1_ratio"] > 0.95:
        out.append(
            f"the model's L1 is {summary['l1_ratio']:.2f}x the no-motion baseline's: it hardly "
            "reconstructs motion (is it trained enough, and on data like this?)."
        )
    moved = summary["baseline"]["akd"]
    if not faces and moved < 0.01 * max(size):
        out.append(
            f"the model's keypoints move only {moved:.2f} px between the first and later real frames, so "
            "AKD and MKR cannot measure motion here: the keypoint detector ignores the image (collapsed "
            "in training, or the clips barely move)."
        )
    return out


def _face_mean(rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in ("akd", "mkr", "aed"):
        values = [r[key] for r in rows if r[key] is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


@torch.inference_mode()
def _reconstruct(
    model: _Model, video: np.ndarray, batch_size: int, size: tuple[int, int], totals: tuple[_Totals, _Totals]
) -> np.ndarray:
    """Generated frames for a whole clip, adding its scores to (model, baseline) totals."""
    ours, base = totals
    source = model.tensor(video[:1])
    kp_source = model.kp_detector(source)
    encoded = model.generator.encode(source, kp_source)
    source_kp = metrics.detect(model.kp_detector, source)
    outputs = []
    for start in range(0, len(video), batch_size):
        real = video[start : start + batch_size]
        driving = model.tensor(real)
        kp_driving = model.kp_detector(driving)
        prediction = model.generator.decode(encoded, kp_driving, with_deformed=False)["prediction"]
        generated = _to_uint8(prediction)
        kp_real = metrics.detect(model.kp_detector, driving)
        kp_generated = metrics.detect(model.kp_detector, model.tensor(generated))
        ours.add(generated, real, kp_generated, kp_real, size)
        repeated = (np.repeat(source_kp[0], len(real), axis=0), np.repeat(source_kp[1], len(real), axis=0))
        base.add(np.repeat(video[:1], len(real), axis=0), real, repeated, kp_real, size)
        outputs.append(generated)
    return np.concatenate(outputs)


def _write_side_by_side(path: Path, real: np.ndarray, generated: np.ndarray, fps: float) -> None:
    first = np.repeat(real[:1], len(real), axis=0)
    _write_side_by_side_frames(path, np.concatenate([real, first, generated], axis=2), fps)


def _write_side_by_side_frames(path: Path, frames: np.ndarray, fps: float) -> None:
    from animatica.media.writer import open_writer

    if frames.shape[1] % 2 or frames.shape[2] % 2:  # H.264 with 4:2:0 needs even sizes
        frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)))
    with open_writer(path, fps) as writer:
        for frame in frames:
            writer.write(frame)


def _write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def animate_pairs(
    checkpoint: str | Path,
    data: Path,
    out_dir: Path,
    pairs_csv: Path | None = None,
    count: int = 10,
    seed: int = 0,
    config: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 16,
    fps: float = 25.0,
    checkpoints_dir: Path | None = None,
) -> list[Path]:
    """Animation evaluation: for each (source, driving) pair, one video source | driving | result.

    The source video's first frame is animated with the driving video's relative motion, as the
    reference's animation mode does; pairs come from ``pairs_csv`` or are drawn at random
    (``count`` pairs, reproducible for ``seed``). There is no ground truth here, so no metric:
    the videos are for looking at identity preservation across subjects.
    """
    from animatica.fomm.motion import normalize_kp
    from animatica.training.datasets import PairedDataset, random_pairs, read_pairs, video_name

    model = _Model(checkpoint, config, device, checkpoints_dir)
    size = fomm_config.frame_size(model.cfg)
    videos = FramesDataset(Path(data), frame_shape=size, is_train=False)
    names = [video_name(p) for p in videos.videos]
    pairs = read_pairs(pairs_csv, names) if pairs_csv is not None else random_pairs(names, count, seed)
    paired = PairedDataset(videos, pairs)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(len(paired)):
        item = paired[index]
        driving = item["driving_video"]
        source_frame = item["source_video"][:1]
        outputs = []
        with torch.inference_mode():
            source = model.tensor(source_frame)
            kp_source = model.kp_detector(source)
            kp_initial = model.kp_detector(model.tensor(driving[:1]))
            encoded = model.generator.encode(source, kp_source)
            for start in range(0, len(driving), batch_size):
                kp_driving = model.kp_detector(model.tensor(driving[start : start + batch_size]))
                kp = normalize_kp(
                    kp_source,
                    kp_driving,
                    kp_initial,
                    use_relative_movement=True,
                    use_relative_jacobian=True,
                )
                outputs.append(
                    _to_uint8(model.generator.decode(encoded, kp, with_deformed=False)["prediction"])
                )
        path = Path(out_dir) / f"{index:04d}-{item['source_name']}-by-{item['driving_name']}.mp4"
        sources = np.repeat(source_frame, len(driving), axis=0)
        _write_side_by_side_frames(
            path, np.concatenate([sources, driving, np.concatenate(outputs)], axis=2), fps
        )
        written.append(path)
    return written
