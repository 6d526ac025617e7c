"""Inference-only FOMM networks that compute the same function faster on a CPU.

Why: the reference networks spend nearly all of their time in convolutions, and on a CPU without
fast bf16 arithmetic the only way to be several times faster in float32 is to do less arithmetic
and fewer passes over memory while computing the same function. ``optimize_for_inference`` copies
the networks and swaps blocks for equivalents:

* batch norm (eval mode) folded into the convolution it follows; a pre-activation block's norm
  becomes a per-channel affine applied while the input is padded;
* 3x3 convolutions on large enough maps with enough channels: Winograd F(4x4, 3x3)
  (``winograd.py``), 4x fewer multiplications;
* nearest x2 up-sampling then a 3x3 convolution: four 2x2 convolutions on the low-resolution input
  (sub-pixel decomposition, exact), 2.25x fewer multiplications;
* channels-last activations and weights throughout, which oneDNN runs without reordering;
* the anti-aliased down-scaling: a strided convolution that computes only the pixels it keeps.

The originals stay untouched and usable; the copies are for inference only (no gradients, eval mode).
"""

import copy
import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from animatica.fomm.blocks import (
    AntiAliasInterpolation2d,
    DownBlock2d,
    ResBlock2d,
    SameBlock2d,
    UpBlock2d,
)
from animatica.fomm.generator import OcclusionAwareGenerator
from animatica.fomm.keypoint_detector import KPDetector
from animatica.fomm.winograd import WinogradConv2d

# Winograd pays off when the batched product dominates the transforms' memory traffic: enough
# channels on both sides and enough pixels per image. Its transformed weights are α²/r² = 4x the
# size of the plain ones, which also caps it to layers of moderate width.
WINOGRAD_MIN_CHANNELS = 128
WINOGRAD_MIN_PIXELS = 32 * 32
WINOGRAD_MAX_WEIGHT_BYTES = 32 << 20
# Output tile per kernel size: F(4x4, 3x3) for 3x3 kernels, F(5x5, 2x2) for the sub-pixel 2x2
# kernels (both 6x6 input tiles, whose transforms stay accurate in float32).
WINOGRAD_TILES = {3: 4, 2: 5}


@functools.cache
def bf16_is_fast() -> bool:
    """Whether bfloat16 matrix products beat float32 here: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 or AMX. Without them (e.g. a plain AVX-512 Xeon) bf16 is emulated and ~3x slower,
    so an ``auto`` precision must stay float32."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    flags = _cpu_flags()
    if flags:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    return "AMX" in capability or "BF16" in capability


def _cpu_flags() -> set[str]:
    """The x86 feature flags of the first CPU in /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def batch_norm_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode batch norm as y = x·scale + shift, per channel (computed in float64)."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() - bn.running_mean.double() * scale
    return scale, shift


def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the single convolution equal to ``bn(conv(x))`` in eval mode."""
    scale, shift = batch_norm_affine(bn)
    weight = conv.weight.double() * scale[:, None, None, None]
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    return weight.to(conv.weight.dtype), (bias * scale + shift).to(conv.weight.dtype)


def _plain_conv(conv: nn.Conv2d) -> bool:
    """Stride 1, no dilation or groups, zero padding: what the fast layers implement."""
    return (
        conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and conv.padding[0] == conv.padding[1]
    )


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


class FastConv2d(nn.Module):
    """A stride-1 convolution that runs direct or Winograd depending on the input it gets.

    Optional extras are fused where the Winograd path can do them for free: ``pre`` = (scale,
    shift) computes conv(relu(x·scale + shift)), then ``residual`` is added and ``relu`` applied.
    The Winograd weights are made on first use, so layers that never see a large input do not pay
    their memory.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, padding: int):
        super().__init__()
        # Channels-last like the activations, or every call would convert it.
        self.register_buffer("weight", _channels_last(weight.detach().clone()))
        self.register_buffer("bias", bias.detach().clone())
        self.padding = padding
        out_ch, in_ch, kh, kw = weight.shape
        self.tile = WINOGRAD_TILES.get(kh, 0) if kh == kw else 0
        winograd_bytes = (self.tile + kh - 1) ** 2 * in_ch * out_ch * weight.element_size()
        self.winograd_ok = (
            self.tile > 0
            and min(in_ch, out_ch) >= WINOGRAD_MIN_CHANNELS
            and winograd_bytes <= WINOGRAD_MAX_WEIGHT_BYTES
        )
        self.winograd: WinogradConv2d | None = None

    def extra_repr(self) -> str:
        o, c, k, _ = self.weight.shape
        return f"{c}, {o}, kernel_size={k}, padding={self.padding}, winograd_ok={self.winograd_ok}"

    def _use_winograd(self, x: torch.Tensor) -> bool:
        return (
            self.winograd_ok
            and x.shape[2] * x.shape[3] >= WINOGRAD_MIN_PIXELS
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
        )

    def forward(
        self,
        x: torch.Tensor,
        pre: tuple[torch.Tensor, torch.Tensor] | None = None,
        relu: bool = False,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self._use_winograd(x):
            if self.winograd is None:
                self.winograd = WinogradConv2d(self.weight, self.bias, self.padding, self.tile)
            return self.winograd(x, pre=pre, relu=relu, residual=residual)
        if pre is not None:
            x = torch.addcmul(pre[1].view(-1, 1, 1), x, pre[0].view(-1, 1, 1)).relu_()
        y = F.conv2d(_channels_last(x), self.weight.to(x.dtype), self.bias.to(x.dtype), padding=self.padding)
        if residual is not None:
            y = y + residual
        return y.relu_() if relu else y


def _fast_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None) -> FastConv2d:
    if not _plain_conv(conv):
        raise ValueError(f"unsupported convolution {conv}")
    if bn is not None:
        weight, bias = fold_batch_norm(conv, bn)
    else:
        weight = conv.weight.detach()
        bias = conv.bias.detach() if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
    return FastConv2d(weight, bias, conv.padding[0])


class FastSameBlock(nn.Module):
    """relu(bn(conv(x))) with the norm folded into the convolution."""

    def __init__(self, block: SameBlock2d):
        super().__init__()
        self.conv = _fast_conv(block.conv, block.norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, relu=True)


class FastDownBlock(nn.Module):
    """avg_pool(relu(bn(conv(x)))) with the norm folded into the convolution."""

    def __init__(self, block: DownBlock2d):
        super().__init__()
        self.conv = _fast_conv(block.conv, block.norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(x, relu=True), 2)


class FastResBlock(nn.Module):
    """x + conv2(relu(bn2(conv1(relu(bn1(x)))))): bn2 folded into conv1, bn1 an affine pre-step."""

    def __init__(self, block: ResBlock2d):
        super().__init__()
        scale, shift = batch_norm_affine(block.norm1)
        dtype = block.conv1.weight.dtype
        self.register_buffer("pre_scale", scale.to(dtype))
        self.register_buffer("pre_shift", shift.to(dtype))
        self.conv1 = _fast_conv(block.conv1, block.norm2)
        self.conv2 = _fast_conv(block.conv2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x, pre=(self.pre_scale, self.pre_shift), relu=True)
        return self.conv2(h, residual=x)


# Nearest x2 up-sampling repeats each input row twice, so output row 2i + a of a 3x3 convolution
# (padding 1) reads up-sampled rows 2i + a - 1 .. 2i + a + 1, i.e. input rows
#   a = 0: i-1, i, i   -> 2 taps on input rows (i-1, i):  (w0, w1 + w2)
#   a = 1: i, i, i+1   -> 2 taps on input rows (i, i+1):  (w0 + w1, w2)
# and the same along columns. _SUBPIXEL_MIX[a, t, k] says whether kernel row k feeds tap t.
_SUBPIXEL_MIX = torch.tensor([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], dtype=torch.float64)


class SubPixelUpBlock(nn.Module):
    """relu(bn(conv3x3(nearest_up2(x)))) computed on the low-resolution input.

    One 2x2 convolution with 4·O outputs (one O-group per output parity (a, b)) over the input
    padded by 1 gives an (h+1, w+1) map; parity (a, b) of output pixel (2i + a, 2j + b) is that
    group at (i + a, j + b). 4 instead of 9 multiplications per output (fewer still when the 2x2
    convolution runs as Winograd), and the 4x larger up-sampled tensor is never built.
    """

    def __init__(self, block: UpBlock2d):
        super().__init__()
        weight, bias = fold_batch_norm(block.conv, block.norm)
        out_ch, in_ch = weight.shape[:2]
        w = torch.einsum("atk,bsl,ockl->abocts", _SUBPIXEL_MIX, _SUBPIXEL_MIX, weight.double())
        self.conv = FastConv2d(w.reshape(4 * out_ch, in_ch, 2, 2).to(weight.dtype), bias.repeat(4), padding=1)
        self.out_channels = out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        o = self.out_channels
        z = self.conv(x).permute(0, 2, 3, 1)  # (N, h+1, w+1, 4·O), contiguous: channels-last
        out = z.new_empty(n, 2 * h, 2 * w, o)
        for a in (0, 1):
            for b in (0, 1):
                group = 2 * a + b
                part = z[:, a : a + h, b : b + w, group * o : (group + 1) * o]
                torch.clamp(part, min=0, out=out[:, a::2, b::2])
        return out.permute(0, 3, 1, 2)


class FastAntiAlias(nn.Module):
    """Gaussian blur then keeping every N-th pixel, as a stride-N convolution (N² fewer products)."""

    def __init__(self, module: AntiAliasInterpolation2d):
        super().__init__()
        self.register_buffer("weight", module.weight.detach().clone())
        self.pad = (module.pad_before, module.pad_after, module.pad_before, module.pad_after)
        self.groups = module.groups
        self.step = module.step
        self.scale = module.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x
        return F.conv2d(F.pad(x, self.pad), self.weight.to(x.dtype), stride=self.step, groups=self.groups)


def _replacement(module: nn.Module) -> nn.Module | None:
    """The fast equivalent of ``module``, or None to keep it (and look inside it)."""
    if isinstance(module, ResBlock2d):
        return FastResBlock(module)
    if isinstance(module, UpBlock2d):
        conv = module.conv
        if conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1):
            return SubPixelUpBlock(module)
        return None
    if isinstance(module, DownBlock2d):
        return FastDownBlock(module)
    if isinstance(module, SameBlock2d):
        return FastSameBlock(module)
    if isinstance(module, AntiAliasInterpolation2d):
        return FastAntiAlias(module)
    return None


def _swap_modules(parent: nn.Module) -> None:
    for name, child in list(parent.named_children()):
        fast = _replacement(child)
        if fast is not None:
            setattr(parent, name, fast)
        elif isinstance(child, nn.Conv2d):
            # Heads and other plain convolutions: channels-last weights, so that channels-last
            # activations (what the fast blocks produce) reach oneDNN without conversions.
            child.weight.data = _channels_last(child.weight.data)
        else:
            _swap_modules(child)


def optimize_network(network: nn.Module) -> nn.Module:
    """An eval-mode, gradient-free copy of ``network`` with its blocks swapped for fast equivalents."""
    fast = copy.deepcopy(network).eval()
    with torch.no_grad():
        replaced = _replacement(fast)  # the network may itself be a single block
        if replaced is not None:
            fast = replaced.eval()
        else:
            _swap_modules(fast)
    return fast.requires_grad_(False)


def optimize_for_inference(
    kp_detector: KPDetector, generator: OcclusionAwareGenerator
) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """Fast inference copies of both networks; they compute the same function (to float32
    rounding, Winograd adding ~1e-5 relative) with the same ``forward``/``encode``/``decode``."""
    return optimize_network(kp_detector), optimize_network(generator)
