"""Inference-only FOMM networks that compute the same function faster on a CPU.

Why: the reference networks spend nearly all of their time in convolutions, and on a CPU without
fast bf16 arithmetic the only way to be several times faster in float32 is to do less arithmetic
and fewer passes over memory while computing the same function. ``optimize_for_inference`` copies
the networks and swaps blocks for equivalents:

* batch norm (eval mode) folded into the convolution it follows; a pre-activation block's norm
  becomes a per-channel affine applied while the input is padded;
* 3x3 convolutions on large enough maps with enough channels (the generator's bottleneck):
  Winograd F(6x6, 3x3) (``winograd.py``), 5x fewer multiplications;
* nearest x2 up-sampling then a 3x3 convolution: four 2x2 convolutions on the low-resolution input
  (sub-pixel decomposition, exact), 2.25x fewer multiplications, themselves Winograd F(5x5, 2x2)
  on large maps;
* convolutions on tiny maps (the innermost hourglass levels): one im2col matrix product;
* channels-last activations and weights throughout, which oneDNN runs without reordering;
* the anti-aliased down-scaling: a strided convolution that computes only the pixels it keeps;
* the dense motion network: its mask and occlusion heads as one convolution, and no float32
  denormals (heatmap tails, saturated sigmoids), which slow every product they enter ~100x.

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
from animatica.fomm.dense_motion import DenseMotionNetwork, MotionSource
from animatica.fomm.generator import OcclusionAwareGenerator
from animatica.fomm.geometry import at_least_fp32
from animatica.fomm.keypoint_detector import Keypoints, KPDetector
from animatica.fomm.winograd import WinogradConv2d, pad_nhwc

# Winograd pays off when the batched product dominates the transforms' memory traffic: enough
# channels on both sides and enough pixels per image. Its transformed weights are α²/r² (7x for
# F(6, 3)) the size of the plain ones, which also caps it to layers of moderate width.
WINOGRAD_MIN_CHANNELS = 128
WINOGRAD_MIN_PIXELS = 32 * 32
WINOGRAD_MAX_WEIGHT_BYTES = 32 << 20
# Output tile per kernel size: F(6x6, 3x3) for 3x3 kernels (measured ~10% faster than F(4x4, 3x3)
# end to end, errors ~1e-4 relative per layer, ~1e-5 on predictions), F(5x5, 2x2) for the
# sub-pixel 2x2 kernels.
WINOGRAD_TILES = {3: 6, 2: 5}

# Up to this many output pixels per image a convolution is one matrix product over an im2col copy
# of its input: oneDNN's direct kernels are slow on tiny maps with many channels (the innermost
# hourglass levels), while the GEMM's long side is then the channel count.
GEMM_MAX_PIXELS = 8 * 8

# Up-sampling blocks whose input has at most this many pixels up-sample and run a 3x3 GEMM
# convolution; the sub-pixel form computes (h+1)(w+1) positions for h·w, a waste at 4x4.
SUBPIXEL_MIN_PIXELS = 5 * 5


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
    """A stride-1 convolution that runs Winograd, im2col GEMM or oneDNN's direct algorithm,
    whichever suits the input it gets (wide layers on large maps, tiny maps, the rest).

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
        k = self.weight.shape[-1]
        h, w = x.shape[2] + 2 * self.padding - k + 1, x.shape[3] + 2 * self.padding - k + 1
        if h * w <= GEMM_MAX_PIXELS and x.device.type == "cpu":
            y = self._gemm(x, pre)
        else:
            y = self._direct(x, pre)
        if residual is not None:
            y = y + residual
        return y.relu_() if relu else y

    def _gemm(self, x: torch.Tensor, pre: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """im2col: (N·Ho·Wo, k·k·C) patches times the (k·k·C, O) weight matrix, one product."""
        n, c, h, w = x.shape
        out_ch, _, k, _ = self.weight.shape
        p = self.padding
        ho, wo = h + 2 * p - k + 1, w + 2 * p - k + 1
        padded = pad_nhwc(x, p, (h + 2 * p, w + 2 * p), pre)
        s = padded.stride()
        patches = padded.as_strided((n, ho, wo, k, k, c), (s[0], s[1], s[2], s[1], s[2], s[3]))
        # The channels-last weight is (O, ky, kx, C) in memory: a (O, k·k·C) matrix without a copy.
        matrix = self.weight.permute(0, 2, 3, 1).reshape(out_ch, k * k * c)
        y = torch.addmm(
            self.bias.to(x.dtype), patches.reshape(n * ho * wo, k * k * c), matrix.t().to(x.dtype)
        )
        return y.view(n, ho, wo, out_ch).permute(0, 3, 1, 2)

    def _direct(self, x: torch.Tensor, pre: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        if pre is not None:
            x = torch.addcmul(pre[1].view(-1, 1, 1), x, pre[0].view(-1, 1, 1)).relu_()
        return F.conv2d(
            _channels_last(x), self.weight.to(x.dtype), self.bias.to(x.dtype), padding=self.padding
        )


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
    convolution runs as Winograd), and the 4x larger up-sampled tensor is never built. Tiny inputs
    (the innermost hourglass levels) take the plain route instead; see SUBPIXEL_MIN_PIXELS.
    """

    def __init__(self, block: UpBlock2d):
        super().__init__()
        weight, bias = fold_batch_norm(block.conv, block.norm)
        self.conv = FastConv2d(weight, bias, padding=1)
        self.sub_pixel: FastConv2d | None = None  # made on first use
        self.out_channels = weight.shape[0]

    def _sub_pixel_conv(self) -> FastConv2d:
        if self.sub_pixel is None:
            weight = self.conv.weight
            out_ch, in_ch = weight.shape[:2]
            w = torch.einsum(
                "atk,bsl,ockl->abocts",
                _SUBPIXEL_MIX.to(weight.device),
                _SUBPIXEL_MIX.to(weight.device),
                weight.double(),
            )
            w = w.reshape(4 * out_ch, in_ch, 2, 2).to(weight.dtype)
            self.sub_pixel = FastConv2d(w, self.conv.bias.repeat(4), padding=1)
        return self.sub_pixel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if h * w < SUBPIXEL_MIN_PIXELS:
            return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"), relu=True)
        o = self.out_channels
        z = self._sub_pixel_conv()(x).permute(0, 2, 3, 1)  # (N, h+1, w+1, 4·O), contiguous
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


# Below this magnitude a value is flushed to zero: float32 denormals (|x| < 1.2e-38), which the
# Gaussian heatmaps' tails and saturated sigmoids produce, make every product they enter ~100x
# slower on x86, and torch.set_flush_denormal reaches only the calling thread, not the workers.
TINY = 1e-30


def flush_tiny(x: torch.Tensor) -> torch.Tensor:
    """x with |values| < TINY set to 0 (a change far below float32 resolution of any sum)."""
    return x.masked_fill(x.abs() < TINY, 0.0)


class FastDenseMotion(DenseMotionNetwork):
    """The dense motion network with denormal-free activations and its two heads as one conv.

    The maths is ``DenseMotionNetwork``'s; this class changes only how two steps run. The mask
    (K+1 channels) and occlusion (1 channel) heads read the same features, so one 7x7 convolution
    with K+2 outputs computes both; and the heatmap tails entering the hourglass and the saturated
    occlusion sigmoid leaving the network are flushed of denormals.
    """

    heads: nn.Conv2d

    @classmethod
    def convert(cls, network: DenseMotionNetwork) -> "FastDenseMotion":
        """Turn ``network`` (an inference copy) into this class in place, merging its heads."""
        network.__class__ = cls
        heads = [network.mask] + ([network.occlusion] if network.occlusion is not None else [])
        merged = nn.Conv2d(heads[0].in_channels, sum(h.out_channels for h in heads), 7, padding=3)
        with torch.no_grad():
            merged.weight.copy_(torch.cat([h.weight for h in heads]))
            merged.bias.copy_(torch.cat([h.bias for h in heads]))
        merged.weight.data = _channels_last(merged.weight.data)
        network.heads = merged.to(heads[0].weight.device)
        return network  # type: ignore[return-value]

    def heatmap_differences(self, src: MotionSource, kp_driving: Keypoints, h: int, w: int) -> torch.Tensor:
        return flush_tiny(super().heatmap_differences(src, kp_driving, h, w))

    def head_logits(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = at_least_fp32(self.heads(features))  # (B, K+1 [+1], h, w)
        k1 = self.num_kp + 1
        return logits[:, :k1], (logits[:, k1:] if self.occlusion is not None else None)

    def forward(self, src: MotionSource, kp_driving: Keypoints) -> dict[str, torch.Tensor]:
        out = super().forward(src, kp_driving)
        if "occlusion_map" in out:
            out["occlusion_map"] = flush_tiny(out["occlusion_map"])
        return out


def _replacement(module: nn.Module) -> nn.Module | None:
    """The fast equivalent of ``module``, or None to keep it (and look inside it)."""
    if isinstance(module, DenseMotionNetwork):
        _swap_modules(module)
        return FastDenseMotion.convert(module)
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
