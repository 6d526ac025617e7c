"""The stitching and the eye / lip retargeting networks: small MLPs on flattened keypoints.

All three are the same kind of network, a stack of linear layers with ReLU between them, kept in an
``nn.Sequential`` named ``mlp`` so that the state-dict keys are ``mlp.0.weight``, ``mlp.0.bias``,
``mlp.2.weight``, ... (the ReLUs take the odd indices), as in the public weight file once its
``module.`` prefix is removed.

- stitching: [x_s (63), x_d (63)] -> 65: a correction of the driving keypoints (63) and of their
  x, y translation (2), so that the animated face stays attached to the shoulders of the source;
- eye: [x_s (63), eye ratios (3)] -> 63 keypoint deltas that open or close the eyes;
- lip: [x_s (63), lip ratios (2)] -> 63 keypoint deltas that open or close the mouth.

How their outputs are applied to keypoints is motion maths and lives in ``motion.py``.
"""

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

NUM_KP = 21  # implicit keypoints of the public models

STITCHING_SIZES = (2 * 3 * NUM_KP, 128, 128, 64, 3 * NUM_KP + 2)
EYE_SIZES = (3 * NUM_KP + 3, 256, 256, 128, 128, 64, 3 * NUM_KP)
LIP_SIZES = (3 * NUM_KP + 2, 128, 128, 64, 3 * NUM_KP)


class RetargetMLP(nn.Module):
    """Linear layers of the given widths (input first, output last) with ReLU between them."""

    def __init__(self, sizes: Sequence[int]):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError("an MLP needs at least an input and an output width")
        layers: list[nn.Module] = []
        for i, (width_in, width_out) in enumerate(pairwise(sizes)):
            if i:
                layers.append(nn.ReLU(inplace=True))
            layers.append(nn.Linear(width_in, width_out))
        self.mlp = nn.Sequential(*layers)
        self.sizes = tuple(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, sizes[0]) -> (B, sizes[-1])"""
        return self.mlp(x)


def stitching_mlp() -> RetargetMLP:
    """The stitching network (``retarget_shoulder`` in the public file)."""
    return RetargetMLP(STITCHING_SIZES)


def eye_mlp() -> RetargetMLP:
    """The eye retargeting network (``retarget_eye`` in the public file)."""
    return RetargetMLP(EYE_SIZES)


def lip_mlp() -> RetargetMLP:
    """The lip retargeting network (``retarget_mouth`` in the public file)."""
    return RetargetMLP(LIP_SIZES)
