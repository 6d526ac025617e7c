"""Turning driving keypoints into the keypoints that drive the source (relative motion).

Absolute motion uses the driving keypoints as they are, which transfers the driving face's shape
and position too. Relative motion (the default) applies only the change since the initial driving
frame to the source keypoints, optionally scaled by the ratio of the two faces' sizes:

    value    = src + (drv - drv_initial) · s,   s = sqrt(area(hull(src)) / area(hull(drv_initial)))
    jacobian = (J_drv · J_drv_initial⁻¹) · J_src
"""

import numpy as np
import torch

from animatica.fomm.keypoint_detector import Keypoints


def hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of 2-D points (monotone chain, then the shoelace formula)."""
    pts = sorted(map(tuple, np.asarray(points, dtype=np.float64)))
    if len(pts) < 3:
        return 0.0

    def cross(o, a, b) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(seq):
        chain: list = []
        for p in seq:
            while len(chain) >= 2 and cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain

    hull = half(pts)[:-1] + half(reversed(pts))[:-1]
    x = np.array([p[0] for p in hull])
    y = np.array([p[1] for p in hull])
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def movement_scale(kp_source: Keypoints, kp_driving_initial: Keypoints) -> torch.Tensor:
    """Per-batch-item factor sqrt(source hull area / initial driving hull area), shape (B, 1, 1)."""
    src = kp_source["value"].detach().float().cpu().numpy()
    drv = kp_driving_initial["value"].detach().float().cpu().numpy()
    scales = []
    for i in range(max(len(src), len(drv))):
        a_src = hull_area(src[min(i, len(src) - 1)])
        a_drv = hull_area(drv[min(i, len(drv) - 1)])
        scales.append(np.sqrt(a_src) / np.sqrt(a_drv) if a_drv > 0 else 1.0)
    return torch.tensor(scales, dtype=kp_source["value"].dtype, device=kp_source["value"].device).view(
        -1, 1, 1
    )


def normalize_kp(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints,
    adapt_movement_scale: bool = False,
    use_relative_movement: bool = False,
    use_relative_jacobian: bool = False,
    scale: torch.Tensor | None = None,
) -> Keypoints:
    """The keypoints that drive the source; ``scale`` may be passed precomputed (it is per job)."""
    out = dict(kp_driving)
    if not use_relative_movement:
        return out
    if adapt_movement_scale:
        s = scale if scale is not None else movement_scale(kp_source, kp_driving_initial)
    else:
        s = 1.0
    out["value"] = kp_source["value"] + (kp_driving["value"] - kp_driving_initial["value"]) * s
    if use_relative_jacobian and "jacobian" in kp_driving:
        change = kp_driving["jacobian"] @ torch.inverse(kp_driving_initial["jacobian"])
        out["jacobian"] = change @ kp_source["jacobian"]
    return out
