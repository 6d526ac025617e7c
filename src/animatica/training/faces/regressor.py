"""Read a synthetic face's mouth opening and head turn back from its pixels.

The cross-identity evaluation asks whether an engine's output follows the driving clip's
expression. The face toolkit's landmarks answer badly on 64-pixel faces (on the truth frames
themselves they correlate only about 0.7 with the rendered mouth opening), so the evaluation
also reads the two parameters with this small network and correlates them with the parameters
the truth was rendered with.

The reader is a four-layer convolutional network trained on the training split of a faces
dataset (frames and their ``params`` JSON; ``bench/train_expression_reader.py`` is the recipe,
seed-1 data, a few CPU minutes); its weights ship beside this module. The held-out people of
other seeds are faces it never saw, like the engines' outputs.
"""

from __future__ import annotations

import itertools
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from animatica.errors import CheckpointError

TARGETS = ("mouth_open", "yaw")
SCALES = (0.15, 10.0)  # about the spread of each over the training frames: both weigh the same
SIDE = 64  # frames are read at this size, whatever the dataset's
FORMAT = "animatica.expression-reader"
VERSION = 1
SHIPPED = Path(__file__).resolve().parent / "weights" / "expression-reader.pth"


class ExpressionReader(nn.Module):
    """``(N, 3, 64, 64)`` in [0, 1] -> ``(N, 2)``: mouth opening and yaw, divided by ``SCALES``."""

    def __init__(self, width: int = 16):
        super().__init__()
        widths = [3, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for cin, cout in itertools.pairwise(widths):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(widths[-1] * 16, 64), nn.ReLU(), nn.Linear(64, len(TARGETS)))
        self.width = width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(images * 2 - 1).flatten(1))

    def read(self, frames: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
        """``{mouth_open, yaw}`` in the renderer's units, each ``(N,)``, of ``(N, H, W, 3)`` uint8 frames."""
        outs = []
        with torch.inference_mode():
            for start in range(0, len(frames), batch):
                outs.append(self(to_tensor(frames[start : start + batch])).float())
        y = torch.cat(outs).numpy().astype(np.float64) * np.asarray(SCALES)
        return {name: y[:, i] for i, name in enumerate(TARGETS)}


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 frames as ``(N, 3, SIDE, SIDE)`` floats in [0, 1]."""
    if frames.shape[1:3] != (SIDE, SIDE):
        frames = np.stack(
            [np.asarray(Image.fromarray(f).resize((SIDE, SIDE), Image.Resampling.BILINEAR)) for f in frames]
        )
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)


def training_split(data: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every training frame of a faces dataset ``(N, SIDE, SIDE, 3)``, its scaled targets ``(N, 2)`` and
    its person's name."""
    from animatica.training.datasets import read_video

    root = Path(data)
    images, targets, people = [], [], []
    for params in sorted((root / "params" / "train").glob("*.json")):
        record = json.loads(params.read_text(encoding="utf-8"))
        frames = read_video(root / "train" / params.stem, (SIDE, SIDE))
        images.append(frames)
        targets += [[f[name] / s for name, s in zip(TARGETS, SCALES, strict=True)] for f in record["frames"]]
        people += [record["person"]] * len(frames)
    return np.concatenate(images), np.asarray(targets, dtype=np.float32), people


def train_reader(
    images: np.ndarray,
    targets: np.ndarray,
    steps: int = 3000,
    batch: int = 64,
    seed: int = 0,
    lr: float = 2e-3,
) -> ExpressionReader:
    """Adam on the mean squared error of the scaled targets, with a cosine learning-rate decay and
    mirrored faces."""
    torch.manual_seed(seed)
    model = ExpressionReader().train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    order = np.random.default_rng(seed)
    y = torch.from_numpy(targets)
    yaw = TARGETS.index("yaw")
    for _ in range(steps):
        picks = order.choice(len(images), size=batch, replace=False)
        # A mirrored face turned by ``yaw`` is a face turned by ``-yaw`` with the same mouth: twice the
        # faces, and a reading that cannot lean on one side of them.
        flip = torch.from_numpy(order.random(batch) < 0.5)
        x = to_tensor(images[picks])
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        target = y[picks].clone()
        target[flip, yaw] = -target[flip, yaw]
        loss = nn.functional.mse_loss(model(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    return model.eval()


def save_reader(model: ExpressionReader, path: Path, meta: dict[str, Any]) -> Path:
    state = {
        "format": FORMAT,
        "version": VERSION,
        "width": model.width,
        "state": model.state_dict(),
        "meta": meta,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return Path(path)


def load_reader(path: Path = SHIPPED) -> ExpressionReader:
    """The reader saved at ``path``; ``CheckpointError`` when it is missing or not a reader."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for missing, truncated or foreign files
        raise CheckpointError(
            f"the expression reader {path} cannot be read ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise CheckpointError(f"{path} is not an expression reader (format {FORMAT}, version {VERSION})")
    model = ExpressionReader(int(data["width"]))
    model.load_state_dict(data["state"], strict=True)
    return model.eval()


@lru_cache(maxsize=1)
def shipped_reader() -> ExpressionReader:
    """The shipped reader, loaded once per process."""
    return load_reader(SHIPPED)
