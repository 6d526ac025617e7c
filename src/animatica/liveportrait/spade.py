"""SPADE decoder G: the warped 256x64x64 features to a 512x512 RGB image in (0, 1).

The decoder's input is also its label map: every SPADE normalisation re-injects it (resized by
nearest-neighbour repetition to the feature size) as a per-pixel scale and shift, so the spatial
layout of the warped features survives the instance normalisations. Six resnet blocks at 64²,
two more that up-sample to 128² and 256² and narrow to 256 and 64 channels, then a 3x3 conv to
12 channels and a pixel shuffle to 3x512x512.

The public checkpoint stores the blocks' convolutions with spectral normalisation
(``weight_orig``, ``weight_u``, ``weight_v``). At inference the normalised kernel is a constant,
so :class:`SpectralNormConv2d` divides it out once, when the weights are loaded, and then runs
as a plain convolution; its state dict still holds the stored triple.

Attribute names (``fc``, ``G_middle_0``, ``conv_img``…) are the public state-dict keys.
"""

import torch
import torch.nn.functional as F
from torch import nn


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-12)


class SpectralNormConv2d(nn.Conv2d):
    """A convolution whose kernel is ``weight_orig / sigma``, sigma = uᵀ · W · v (W viewed as
    (out, -1)) from the stored vectors, with no power iteration: the trained model's inference.

    ``weight`` is the folded kernel, a non-persistent buffer recomputed after every
    ``load_state_dict`` (and by :meth:`fold`), so the forward pass is ``nn.Conv2d``'s own. The
    price is a second copy of each kernel (about 120 MB for the public decoder). For inference
    only: gradients do not reach ``weight_orig``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, bias: bool = True
    ):
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        kernel = self.weight.detach()
        del self.weight
        # Registration order gives the public state-dict order: bias, weight_orig, weight_u, weight_v.
        self.weight_orig = nn.Parameter(kernel)
        w = kernel.flatten(1)  # (out, in·kh·kw)
        u = torch.empty(w.shape[0], dtype=w.dtype, device=w.device)
        v = torch.empty(w.shape[1], dtype=w.dtype, device=w.device)
        if not kernel.is_meta:
            # A few power-iteration rounds so that a freshly built (unloaded) module is usable too.
            with torch.no_grad():
                v = _unit(torch.randn_like(v))
                for _ in range(10):
                    u = _unit(w @ v)
                    v = _unit(w.t() @ u)
                u = _unit(w @ v)
        self.register_buffer("weight_u", u)
        self.register_buffer("weight_v", v)
        self.register_buffer("weight", torch.empty_like(kernel), persistent=False)
        self.register_load_state_dict_post_hook(_fold_after_load)
        self.fold()

    @torch.no_grad()
    def fold(self) -> None:
        """Recompute the run-time kernel from ``weight_orig``, ``weight_u`` and ``weight_v``."""
        w = self.weight_orig.detach()
        sigma = torch.dot(self.weight_u, w.flatten(1) @ self.weight_v)
        self.weight = w / sigma


def _fold_after_load(module: SpectralNormConv2d, _incompatible_keys) -> None:
    module.fold()


class SPADE(nn.Module):
    """Parameter-free instance norm, then a per-pixel scale and shift predicted from the label map."""

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = 128):
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False, eps=1e-5)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        label = F.interpolate(label, size=x.shape[2:], mode="nearest")
        hidden = self.mlp_shared(label)
        return normalized * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class SPADEResnetBlock(nn.Module):
    """shortcut + conv(act(SPADE(conv(act(SPADE(x)))))); the shortcut is x, or a bias-free 1x1
    conv of SPADE(x) when the width changes. The middle width is the smaller of the two."""

    def __init__(self, fin: int, fout: int, label_nc: int):
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = SpectralNormConv2d(fin, fmiddle, kernel_size=3, padding=1)
        self.conv_1 = SpectralNormConv2d(fmiddle, fout, kernel_size=3, padding=1)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(fin, fout, kernel_size=1, bias=False)
        self.norm_0 = SPADE(fin, label_nc)
        self.norm_1 = SPADE(fmiddle, label_nc)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, label)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, label), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, label), 0.2))
        return shortcut + dx


class SPADEDecoder(nn.Module):
    def __init__(self, input_channels: int = 256, out_channels: int = 64, upscale: int = 2):
        super().__init__()
        width = 2 * input_channels  # 512
        self.fc = nn.Conv2d(input_channels, width, kernel_size=3, padding=1)
        for i in range(6):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(width, width, input_channels))
        self.up_0 = SPADEResnetBlock(width, input_channels, input_channels)
        self.up_1 = SPADEResnetBlock(input_channels, out_channels, input_channels)
        self.conv_img = nn.Sequential(
            nn.Conv2d(out_channels, 3 * upscale**2, kernel_size=3, padding=1),
            nn.PixelShuffle(upscale),  # output channel c, sub-pixel (i, j) <- input channel 4c + 2i + j
        )

    def fold_spectral_norm(self) -> None:
        """Recompute every spectrally normalised kernel, e.g. after editing ``weight_orig`` in place."""
        for module in self.modules():
            if isinstance(module, SpectralNormConv2d):
                module.fold()

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """(B, 256, 64, 64) -> (B, 3, 512, 512) in (0, 1)."""
        label = feature
        x = self.fc(feature)  # (B, 512, 64, 64)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, label)
        x = self.up_0(F.interpolate(x, scale_factor=2, mode="nearest"), label)  # (B, 256, 128, 128)
        x = self.up_1(F.interpolate(x, scale_factor=2, mode="nearest"), label)  # (B, 64, 256, 256)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))
