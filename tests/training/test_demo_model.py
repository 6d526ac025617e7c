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
def test_demo_meets_the_issue_figure_on_unseen_clips(tmp_path: Path) -> None:
    # The held-out set of bench/train_demo.py: 40 clips of seed 2, which training never saw (seed 1).
    data = synthesize(tmp_path / "unseen", videos=1, seed=2, size=64, test_videos=40)
    summary = evaluate(DEMO, data / "test", device="cpu")["summary"]
    # Shipped model: L1 0.6993x and keypoint distance 0.594x the baseline's, the same to 1e-8 at one
    # thread or two; the fp32 model shipped before it scored 0.6997x and 0.608x. A model that
    # ignores motion scores about 1.0. Fewer clips would not do: on 4, 8 and 12 clips of seed 12345
    # this model's L1 ratio is 0.68, 0.72 and 0.74.
    assert summary["l1_ratio"] <= 0.70, summary
    assert summary["akd_ratio"] < 0.65, summary
