"""Reconstruction metrics in the form the FOMM paper reports them.

* L1: mean absolute difference of generated and real frames on [0, 1] pixel values.
* AKD (average keypoint distance): mean Euclidean distance, in pixels, between keypoints found
  independently on the generated and on the real frame. For non-face data the detector is the
  model's own keypoint detector (the reference protocol for Tai-Chi/MGIF uses a pose detector we
  do not have; the model's detector measures whether the generated frame puts each learned part
  where the real frame has it).
* MKR (missing keypoint rate): share of keypoints detected in the real frame but not in the
  generated one. The model's detector always returns a position, so "detected" is defined by its
  confidence: the spatial spread (standard deviation) of the keypoint's softmax heatmap must be at
  most ``DETECTED_SPREAD`` of the frame side.
* AED (average euclidean distance of identity embeddings) exists only for faces and comes from
  ``animatica.face.metrics``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from animatica.fomm.geometry import coordinate_grid
from animatica.fomm.keypoint_detector import KPDetector

DETECTED_SPREAD = 0.1  # a keypoint counts as detected when its heatmap's spread is ≤ 10% of the side


def l1_sum(generated: np.ndarray, real: np.ndarray) -> float:
    """Sum over frames of the per-frame mean |generated − real| on [0, 1]; uint8 (N, H, W, 3) inputs."""
    if generated.shape != real.shape:
        raise ValueError(f"frame shapes differ: {generated.shape} vs {real.shape}")
    diff = np.abs(generated.astype(np.float32) - real.astype(np.float32)) / 255.0
    return float(diff.reshape(len(diff), -1).mean(axis=1).sum())


def keypoint_distances(a: np.ndarray, b: np.ndarray, height: int, width: int) -> np.ndarray:
    """Per-keypoint pixel distances (N, K) between normalised keypoints (N, K, 2) in [-1, 1].

    With ``align_corners`` coordinates, -1 and 1 are the centres of the first and last pixel, so
    one unit is (side - 1) / 2 pixels.
    """
    scale = np.array([(width - 1) / 2, (height - 1) / 2])
    return np.linalg.norm((a - b) * scale, axis=-1)


@torch.no_grad()
def detect(kp_detector: KPDetector, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (N, K, 2) and their heatmap spreads (N, K) as a fraction of the frame side.

    Recomputes the detector's softmax heatmap from its public parts, because its forward returns
    only the expectation, not how concentrated the distribution around it is.
    """
    x = kp_detector.down(images) if kp_detector.scale_factor != 1 else images
    logits = kp_detector.kp(kp_detector.predictor(x))
    b, k, h, w = logits.shape
    heat = F.softmax(logits.float().flatten(2) / kp_detector.temperature, dim=2).view(b, k, h, w)
    grid = coordinate_grid(h, w, heat.dtype, heat.device)
    mean = torch.einsum("bkhw,hwc->bkc", heat, grid)
    var = torch.einsum("bkhw,bkhwc->bkc", heat, (grid[None, None] - mean[:, :, None, None]) ** 2)
    # Coordinates span 2 units per side: a spread of s units is s / 2 of the side.
    spread = var.sum(-1).sqrt() / 2
    return mean.cpu().numpy(), spread.cpu().numpy()


def missing_count(real_spread: np.ndarray, generated_spread: np.ndarray) -> tuple[int, int]:
    """(keypoints detected in the real frames but not the generated ones, keypoints detected in real)."""
    real_found = real_spread <= DETECTED_SPREAD
    generated_found = generated_spread <= DETECTED_SPREAD
    return int(np.sum(real_found & ~generated_found)), int(np.sum(real_found))
