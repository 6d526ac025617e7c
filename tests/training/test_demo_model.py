"""The shipped ``demo`` model: small, self-describing, usable by name, and better than no motion."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from animatica.engines.fomm import FommEngine
from animatica.fomm.checkpoint import SHIPPED_DIR, read_checkpoint, resolve_checkpoint
from animatica.fomm.config import config_from_dict, frame_size
from animatica.training.evaluate import evaluate
from animatica.training.synth import render_clip, synthesize

DEMO = SHIPPED_DIR / "demo.pth.tar"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_demo_is_small_and_carries_its_config() -> None:
    assert DEMO.stat().st_size < 20 * 2**20
    data = read_checkpoint(DEMO)
    assert set(data) == {"generator", "kp_detector", "config", "epoch"}
    assert frame_size(config_from_dict(data["config"])) == (64, 64)
    assert resolve_checkpoint("demo") == DEMO


def test_demo_animates_by_name() -> None:
    engine = FommEngine.load("demo", device="cpu", precision="fp32")
    clip = render_clip(99, "test", 0, size=64, frames=5)
    state = engine.prepare(clip[0], clip[0])
    out = engine.animate(state, clip)
    assert out.shape == clip.shape and out.dtype == clip.dtype
    assert out.std() > 5  # a picture, not a flat grey


@pytest.mark.slow
def test_demo_beats_the_no_motion_baseline_on_unseen_clips(tmp_path: Path) -> None:
    data = synthesize(tmp_path / "unseen", videos=1, seed=12345, size=64, test_videos=4)
    summary = evaluate(DEMO, data / "test", device="cpu")["summary"]
    # Shipped model on these clips: L1 0.679x and keypoint distance 0.687x the baseline's (the model
    # shipped before it: 0.681x, 0.790x, so the keypoint bound fails for it); the margin is for
    # other CPUs' arithmetic, and a model that ignores motion scores about 1.0.
    assert summary["l1_ratio"] < 0.70, summary
    assert summary["akd_ratio"] < 0.75, summary
