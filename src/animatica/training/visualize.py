"""Image grids that show what training is doing: keypoints, warped source, occlusion, prediction.

A loss curve cannot tell a model that tracks the object from one that blurs it into place; one
row per sample — source with its keypoints, driving frame with its keypoints, the source warped
by the dense motion, the occlusion map and the prediction — can, at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.draw import disk

_MAX_ROWS = 4


def _colours(count: int) -> np.ndarray:
    """Distinct hues around the colour wheel, one per keypoint."""
    hue = np.arange(count) / max(count, 1)
    return np.stack(
        [0.5 + 0.5 * np.cos(2 * np.pi * (hue + offset)) for offset in (0.0, 1 / 3, 2 / 3)], axis=-1
    )


def draw_keypoints(image: np.ndarray, points: np.ndarray, radius: float | None = None) -> np.ndarray:
    """Dots at normalised points (K, 2) in [-1, 1] (x, y) on a float (H, W, 3) image."""
    out = image.copy()
    h, w = out.shape[:2]
    radius = radius or max(1.0, h / 48)
    for colour, (x, y) in zip(_colours(len(points)), points, strict=True):
        rows, cols = disk(((y + 1) / 2 * (h - 1), (x + 1) / 2 * (w - 1)), radius, shape=(h, w))
        out[rows, cols] = colour
    return out


def _images(t: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    t = t.detach().float()
    if t.shape[2:] != size:
        t = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return t.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


def training_grid(
    source: torch.Tensor, driving: torch.Tensor, generated: dict[str, torch.Tensor]
) -> np.ndarray:
    """One row per sample (up to four), columns as in the module docstring; uint8 (H', W', 3)."""
    n = min(_MAX_ROWS, source.shape[0])
    size = tuple(source.shape[2:])
    src = _images(source[:n], size)
    drv = _images(driving[:n], size)
    kp_src = generated["kp_source"][:n].detach().float().cpu().numpy()
    kp_drv = generated["kp_driving"][:n].detach().float().cpu().numpy()
    columns = [
        np.stack([draw_keypoints(src[i], kp_src[i]) for i in range(n)]),
        np.stack([draw_keypoints(drv[i], kp_drv[i]) for i in range(n)]),
    ]
    for key in ("deformed", "occlusion_map"):
        if key in generated:
            columns.append(_images(generated[key][:n], size))
    columns.append(_images(generated["prediction"][:n], size))
    rows = [np.concatenate([col[i] for col in columns], axis=1) for i in range(n)]
    return np.clip(np.rint(np.concatenate(rows, axis=0) * 255), 0, 255).astype(np.uint8)


def save_grid(path: Path, grid: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(grid).save(tmp)
    tmp.replace(path)
