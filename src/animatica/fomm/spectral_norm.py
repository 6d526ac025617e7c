"""Spectral normalisation of a convolution's weight, with the public checkpoints' parameter names.

The weight is divided by its largest singular value, estimated by one power-iteration step per
training forward pass. The state dict holds ``weight_orig`` (the free parameter) and the power
iteration's vectors ``weight_u`` and ``weight_v``, the names the discriminators of the public
checkpoints were saved with.
"""

import torch
import torch.nn.functional as F
from torch import nn


def _normalize(v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return v / (v.norm() + eps)


class SNConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, eps: float = 1e-12):
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.stride, self.padding = conv.stride, conv.padding
        # Registered in the order of the public state dicts: bias, weight_orig, weight_u, weight_v.
        self.bias = nn.Parameter(conv.bias.detach().clone())
        self.weight_orig = nn.Parameter(conv.weight.detach().clone())
        matrix_cols = in_channels * kernel_size * kernel_size
        self.register_buffer("weight_u", _normalize(torch.randn(out_channels)))
        self.register_buffer("weight_v", _normalize(torch.randn(matrix_cols)))
        self.eps = eps

    def weight(self) -> torch.Tensor:
        w = self.weight_orig.flatten(1)  # (out, in*k*k)
        u, v = self.weight_u, self.weight_v
        if self.training:
            with torch.no_grad():
                v = _normalize(w.t() @ u, self.eps)
                u = _normalize(w @ v, self.eps)
                self.weight_v.copy_(v)
                self.weight_u.copy_(u)
            # Copies, so that a later forward pass updating the buffers in place cannot invalidate
            # this pass's graph (the discriminator runs on real and fake images before backward).
            u, v = u.clone(), v.clone()
        sigma = u @ (w @ v)
        return self.weight_orig / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias, self.stride, self.padding)
