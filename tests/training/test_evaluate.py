"""Reconstruction evaluation: report, baseline figures computed independently, side-by-side videos."""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from animatica.fomm.checkpoint import SHIPPED_DIR, read_checkpoint, save_checkpoint
from animatica.fomm.config import config_from_dict, kp_detector_kwargs
from animatica.fomm.keypoint_detector import KPDetector
from animatica.media.reader import iter_frames
from animatica.training.datasets import read_video, write_pairs
from animatica.training.errors import DatasetError
from animatica.training.evaluate import animate_pairs, evaluate
from animatica.training.synth import synthesize
from animatica.training.trainer import train

from .conftest import tiny_config

DEMO = SHIPPED_DIR / "demo.pth.tar"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoint(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval-run")
    return train(
        tiny_config(), tiny_data, out_dir=out, steps=3, device="cpu", grid_every=0, progress_bar=False
    )


def test_report_json_and_videos(checkpoint: Path, tiny_data: Path, tmp_path: Path) -> None:
    report = evaluate(
        checkpoint,
        tiny_data,
        json_out=tmp_path / "r.json",
        videos_out=tmp_path / "videos",
        device="cpu",
        batch_size=3,
    )
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(report))
    summary = report["summary"]
    assert summary["videos"] == 2 and summary["frames"] == 16
    assert set(summary["model"]) == set(summary["baseline"]) == {"l1", "akd", "mkr"}
    assert [v["name"] for v in report["videos"]] == ["clip00000", "clip00001"]
    assert summary["l1_ratio"] == pytest.approx(summary["model"]["l1"] / summary["baseline"]["l1"])
    assert "frame 0 is the source" in report["protocol"]["mode"]
    frames = list(iter_frames(tmp_path / "videos" / "clip00001.mp4"))
    assert len(frames) == 8 and frames[0].shape == (32, 96, 3)


def test_baseline_figures_match_an_independent_computation(checkpoint: Path, tiny_data: Path) -> None:
    report = evaluate(checkpoint, tiny_data / "test", device="cpu")
    clips = [
        read_video(tiny_data / "test" / name, (32, 32)).astype(np.float64) / 255
        for name in ("clip00000", "clip00001")
    ]
    l1 = np.mean([np.abs(c - c[0]).mean(axis=(1, 2, 3)) for c in clips])
    assert report["summary"]["baseline"]["l1"] == pytest.approx(l1, rel=1e-5)
    data = read_checkpoint(checkpoint)
    detector = KPDetector(**kp_detector_kwargs(config_from_dict(data["config"])))
    detector.load_state_dict(data["kp_detector"])
    detector.eval()
    distances = []
    with torch.no_grad():
        for clip in clips:
            kp = detector(torch.from_numpy(clip).permute(0, 3, 1, 2).float())["value"].numpy()
            distances.append(np.linalg.norm((kp - kp[:1]) * 31 / 2, axis=-1))
    assert report["summary"]["baseline"]["akd"] == pytest.approx(np.mean(distances), rel=1e-4)
    assert report["summary"]["model"]["akd"] >= 0


def test_a_collapsed_keypoint_detector_is_reported(tmp_path: Path) -> None:
    """Zeroed keypoint heads give the same keypoints for every frame: AKD 0 that must not read as good."""
    data = read_checkpoint(DEMO)
    for key in ("kp.weight", "kp.bias", "jacobian.weight"):
        data["kp_detector"][key] = torch.zeros_like(data["kp_detector"][key])
    collapsed = tmp_path / "collapsed.pth.tar"
    save_checkpoint(collapsed, data)
    clips = synthesize(tmp_path / "clips", videos=1, test_videos=2, seed=7, size=64, frames=6)
    report = evaluate(collapsed, clips / "test", device="cpu")
    assert report["summary"]["model"]["akd"] == pytest.approx(0.0, abs=1e-4)
    assert report["summary"]["warnings"] and "keypoint detector ignores the image" in " ".join(
        report["summary"]["warnings"]
    )
    assert evaluate(DEMO, clips / "test", device="cpu")["summary"]["warnings"] == []


def test_face_metrics_are_reported_when_asked(checkpoint: Path, tiny_data: Path) -> None:
    report = evaluate(checkpoint, tiny_data, device="cpu", faces=True, max_videos=1)
    # Procedural characters are not human faces: the face toolkit finds none, which is reported as such.
    assert set(report["summary"]["face_model"]) == {"akd", "mkr", "aed"}
    assert report["summary"]["face_model"]["akd"] is None
    assert "landmarks" in report["protocol"]["akd"]


def test_bad_data_folder(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError):
        evaluate(checkpoint, tmp_path / "missing", device="cpu")


def test_animation_pairs_write_one_video_per_pair(checkpoint: Path, tiny_data: Path, tmp_path: Path) -> None:
    write_pairs(tmp_path / "pairs.csv", [("clip00001", "clip00000")])
    written = animate_pairs(
        checkpoint, tiny_data, tmp_path / "anim", pairs_csv=tmp_path / "pairs.csv", device="cpu"
    )
    assert [p.name for p in written] == ["0000-clip00001-by-clip00000.mp4"]
    frames = list(iter_frames(written[0]))
    assert len(frames) == 8 and frames[0].shape == (32, 96, 3)
    # Left: the source's first frame; middle: the driving clip (both through lossy H.264).
    driving = read_video(tiny_data / "test" / "clip00000", (32, 32)).astype(int)
    source = read_video(tiny_data / "test" / "clip00001", (32, 32)).astype(int)
    middle, left = frames[5][:, 32:64].astype(int), frames[5][:, :32].astype(int)
    assert np.abs(middle - driving[5]).mean() < np.abs(middle - source[0]).mean() / 2
    assert np.abs(left - source[0]).mean() < np.abs(left - driving[5]).mean() / 2
