"""Inference-only LivePortrait warping module and SPADE decoder that compute the same function
with far fewer multiplications, for CPUs without fast low-precision arithmetic.

Why: a 512x512 frame costs about 1.25 TFLOP of convolutions (warping 342 GFLOP, decoder 892), and
the plain layers already run near the CPU's float32 matrix-product rate, so being several times
faster means doing less arithmetic for the same function. :func:`accelerate` swaps the two
per-frame networks for equivalents (same outputs to float32 rounding; Winograd adds ~1e-5
relative per layer):

* SPADE label convolutions (``mlp_shared``): every SPADE layer reads the same label map, the
  decoder input, nearest-resized to 64², 128² or 256². A 3x3 convolution of a map repeated s
  times along each axis is, for each output phase, a smaller convolution of the original map with
  a kernel whose taps are summed (phase 0 of s = 4 reads rows i-1, i, i; phases 1 and 2 read
  only row i; phase 3 rows i, i, i+1). So all of them run at 64²: 2.25x (128²) and 4x (256²)
  fewer multiplications, and the layers of one resolution are one convolution with their outputs
  concatenated;
* ``mlp_gamma`` and ``mlp_beta`` read the same hidden map: one convolution; the ``1 +`` of
  ``norm·(1 + gamma) + beta`` moves into its bias, and the instance-norm statistics are folded
  into the modulation (x·g·r + beta - mean·g·r, computed in place on the convolution's output);
* the input of the up-sampling blocks is never up-sampled: its statistics are those of the
  small map, and the modulation reads it through a broadcast view;
* 3x3 convolutions with enough channels: Winograd F(6x6, 3x3) (``fomm/winograd.py``), 5x fewer
  multiplications, the residual add fused into the output transform;
* the warping hourglass' wide 3x3x3 convolutions: Winograd along height and width, direct along
  the (short) depth axis, whose three taps become three accumulated products of the same
  transformed tiles (5x fewer multiplications);
* the 7x7x7 mask head (142 -> 22 channels, 140 of the module's 342 GFLOP): Winograd is too
  inexact for 7 taps, so Fourier transforms of tiles (``fft_conv.py``), ~3x faster;
* the 7x7 occlusion head (2272 -> 1 channel): one matrix product for all 49 taps, then shifted
  sums (a single-output direct convolution runs at a few percent of the matrix-product rate);
* nearest x(1, 2, 2) up-sampling then a 3x3x3 convolution (hourglass decoder): four (3, 2, 2)
  convolutions on the small map, 2.25x fewer multiplications;
* batch norm (eval mode) folded into the convolution before it.

Only float32 on a CPU takes the Winograd and Fourier routes; on other devices, dtypes or under autocast the
same modules run ``F.conv2d``/``F.conv3d`` (the other rewrites still hold), so the accelerated
networks stay device-agnostic and bf16-capable.
"""

import math
from dataclasses import replace
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from animatica.fomm.winograd import _POINTS, WinogradConv2d, _buffer, winograd_matrices
from animatica.liveportrait.checkpoint import LivePortraitNetworks
from animatica.liveportrait.fft_conv import FFT_TILE, FFTConv3d

# Output tile of each Winograd route (0 = direct convolution). F(6x6, 3x3) for the decoder's
# 3x3 convolutions; F(5x5, 2x2) for the phase kernels of the label convolutions at 128² and 256².
TILE_3X3 = 6
TILE_2X2 = 5
TILE_3D = 6  # the 3x3x3 hourglass convolutions (along height and width)
# The 7x7x7 mask head runs through Fourier transforms (``FFT_TILE``); with ``tile_fft=0`` it is
# direct, as F(2x2, 7x7) saves too little for its transforms with 22 outputs.
TILE_7X7 = 0
# Below these sizes the transforms cost more than they save: direct convolution.
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_CHANNELS_3D = 64
WINOGRAD_MIN_PIXELS = 16 * 16
# Per Winograd block, about this many bytes of transformed input (the weights' share of a block
# is what keeps the batched product efficient; larger than the 2-D default, because the decoder's
# wide layers would otherwise get blocks of a few dozen tiles).
BLOCK_BYTES = 1 << 25


def _winograd_ready(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")


class Conv2dFast(nn.Module):
    """A stride-1 2-D convolution with zero padding: Winograd F(tile, k) where it pays, else oneDNN.

    ``residual`` is added to the output; with Winograd that add is fused into the output transform.
    The Winograd weights are made on first use on a CPU.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, padding: int, tile: int = 0):
        super().__init__()
        out_ch, in_ch, kh, kw = weight.shape
        self.register_buffer("weight", weight.detach().clone().contiguous(memory_format=torch.channels_last))
        b = bias.detach().clone() if bias is not None else weight.new_zeros(out_ch)
        self.register_buffer("bias", b)
        self.padding = padding
        self.tile = tile if kh == kw and min(in_ch, out_ch) >= WINOGRAD_MIN_CHANNELS else 0
        self.winograd: WinogradConv2d | None = None

    def extra_repr(self) -> str:
        o, c, k, _ = self.weight.shape
        return f"{c}, {o}, kernel_size={k}, padding={self.padding}, tile={self.tile}"

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.tile and x.shape[2] * x.shape[3] >= WINOGRAD_MIN_PIXELS and _winograd_ready(x):
            if self.winograd is None:
                self.winograd = WinogradConv2d(self.weight, self.bias, self.padding, self.tile, BLOCK_BYTES)
            return self.winograd(x, residual=residual)
        x = x.contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype), padding=self.padding)
        return y if residual is None else y.add_(residual)


# --- 3-D: Winograd in height and width, direct in depth ------------------------------------------


def _transform(matrix: torch.Tensor, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out[i, j] = Σ_uv M[i, u] M[j, v] x[u, v] for x (a, a, N), out (m, m, N): M x Mᵀ per column,
    one axis at a time."""
    m, a = matrix.shape
    rows = _buffer(3, m * a * x.shape[2], x).view(m, a, x.shape[2])
    torch.mm(matrix, x.view(a, -1), out=rows.view(m, -1))  # along the first axis
    return torch.matmul(matrix, rows, out=out)  # along the second, for each i


class WinogradConv3d(nn.Module):
    """Stride-1 (kd, k, k) convolution with zero padding: F(m×m, k×k) over height and width, the
    depth taps direct.

    Output depth slice z is Σ_t conv2d(input slice z + t, w[:, :, t]). Every input slice's tiles
    are transformed once; depth tap t is then one batched product of the transformed slices
    z + t with that tap's transformed kernel, accumulated, so the depth costs kd products and no
    extra transforms. Takes (N, C, D, H, W), returns (N, O, D, H, W) channels-last in memory.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, padding: int, tile: int):
        super().__init__()
        out_ch, in_ch, kd, kh, kw = weight.shape
        if kh != kw or kd != 2 * padding + 1 or kh != 2 * padding + 1:
            raise ValueError(f"WinogradConv3d needs a 'same' cubic kernel, got {tuple(weight.shape)}")
        at, bt, g = winograd_matrices(tile, kh)
        alpha = tile + kh - 1
        w = weight.detach().double()
        # U[t, a·α + b, c, o] = (G w[o, c, t] Gᵀ)[a, b]
        u = torch.einsum("ai,octij,bj->tabco", g.to(w.device), w, g.to(w.device))
        self.register_buffer("u", u.reshape(kd, alpha * alpha, in_ch, out_ch).to(weight.dtype).contiguous())
        # Applied along one axis at a time (2·α³ instead of α⁴ multiplications per tile).
        self.register_buffer("bt", bt.to(weight))
        self.register_buffer("at", at.to(weight))
        b = bias.detach() if bias is not None else weight.new_zeros(out_ch)
        self.register_buffer("bias", b.to(weight).clone())
        one = _POINTS.index(Fraction(1))
        self.bias_index = one * alpha + one  # Aᵀ's column for the point 1 is all ones
        self.tile, self.kernel, self.depth_kernel, self.padding = tile, kh, kd, padding
        self.in_channels, self.out_channels = in_ch, out_ch

    def extra_repr(self) -> str:
        k, kd = self.kernel, self.depth_kernel
        return f"{self.in_channels}, {self.out_channels}, kernel_size={kd}x{k}x{k}, F({self.tile}, {k})"

    def forward(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        n, c, d, h, w = x.shape
        m, p, k, o = self.tile, self.padding, self.kernel, self.out_channels
        alpha = m + k - 1
        th, tw = -(-h // m), -(-w // m)
        # (N, Dp, Hp, Wp, C): zero-padded channels-last volume covering every tile.
        dp = d + 2 * p
        padded = x.new_zeros(n, dp, th * m + k - 1, tw * m + k - 1, c)
        padded[:, p : p + d, p : p + h, p : p + w] = x.permute(0, 2, 3, 4, 1)
        s = padded.stride()
        out = x.new_empty(n, d, th * m, tw * m, o)
        tile_bytes = alpha * alpha * dp * max(c, o) * x.element_size()
        rows_per_block = max(1, min(th, BLOCK_BYTES // (tile_bytes * tw)))
        for img in range(n):
            for r0 in range(0, th, rows_per_block):
                rows = min(rows_per_block, th - r0)
                t = rows * tw
                base = padded[img, :, r0 * m :]
                gathered = base.as_strided(
                    (alpha, alpha, dp, rows, tw, c),
                    (s[2], s[3], s[1], m * s[2], m * s[3], s[4]),
                    base.storage_offset(),
                )
                size = alpha * alpha * dp * t * max(c, o)
                dbuf = _buffer(0, size, x)[: alpha * alpha * dp * t * c].view(alpha, alpha, dp, rows, tw, c)
                dbuf.copy_(gathered)
                v = _buffer(1, size, x)[: alpha * alpha * dp * t * c].view(alpha * alpha, dp, t, c)
                _transform(self.bt, dbuf.view(alpha, alpha, -1), v.view(alpha, alpha, -1))
                prod = _buffer(2, alpha * alpha * d * t * o, x).view(alpha * alpha, d * t, o)
                for tap in range(self.depth_kernel):
                    vin = v[:, tap : tap + d].reshape(alpha * alpha, d * t, c)
                    if tap == 0:
                        torch.bmm(vin, self.u[tap], out=prod)
                    else:
                        prod.baddbmm_(vin, self.u[tap])
                prod[self.bias_index] += self.bias
                y = _buffer(0, m * m * d * t * o, x).view(m * m, d * t * o)
                _transform(self.at, prod.view(alpha, alpha, -1), y.view(m, m, -1))
                # (m, m, d, rows, tw, O) -> out[img, :, rows·m, tw·m, :]
                src = y.view(m, m, d, rows, tw, o).permute(2, 3, 0, 4, 1, 5)
                dst = out[img, :, r0 * m : (r0 + rows) * m].view(d, rows, m, tw, m, o)
                if relu:
                    torch.clamp(src, min=0, out=dst)
                else:
                    dst.copy_(src)
        if th * m != h or tw * m != w:
            out = out[:, :, :h, :w].contiguous()
        return out.permute(0, 4, 1, 2, 3)


class Conv3dFast(nn.Module):
    """A stride-1 'same' 3-D convolution: :class:`WinogradConv3d` on large enough float32 CPU
    inputs, else oneDNN (channels-last). ``relu`` is applied to the output."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        padding,
        tile: int = 0,
        channels_last: bool = True,
    ):
        super().__init__()
        out_ch, in_ch, kd, kh, kw = weight.shape
        # oneDNN's direct 3-D kernels are faster channels-last, except with few outputs (mask head).
        self.memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
        self.register_buffer("weight", weight.detach().clone().contiguous(memory_format=self.memory_format))
        b = bias.detach().clone() if bias is not None else weight.new_zeros(out_ch)
        self.register_buffer("bias", b)
        self.padding = padding
        cubic = kd == kh == kw and padding == (kh - 1) // 2
        self.tile = tile if cubic and min(in_ch, out_ch) >= WINOGRAD_MIN_CHANNELS_3D else 0
        self.winograd: WinogradConv3d | None = None

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, padding={self.padding}, tile={self.tile}"

    def forward(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        if self.tile and x.shape[3] * x.shape[4] >= WINOGRAD_MIN_PIXELS and _winograd_ready(x):
            if self.winograd is None:
                self.winograd = WinogradConv3d(self.weight, self.bias, self.padding, self.tile)
            return self.winograd(x, relu=relu)
        x = x.contiguous(memory_format=self.memory_format)
        y = F.conv3d(x, self.weight.to(x.dtype), self.bias.to(x.dtype), padding=self.padding)
        return y.relu_() if relu else y


# --- Sub-pixel (phase) decomposition of nearest up-sampling followed by a 3-tap convolution ------


def phase_mixes(scale: int) -> tuple[list[tuple[int, torch.Tensor]], list[int]]:
    """For a 3-tap, padding-1 convolution after nearest x``scale`` repetition along one axis:
    the distinct phases as (shift, mix (2, 3)) and, per output phase, the index of its phase.

    Output row scale·i + a reads repeated rows scale·i + a - 1 .. + 1, i.e. original rows
    i + floor((a + k - 1) / scale) for tap k: two consecutive rows (i - 1, i) (shift 0) or
    (i, i + 1) (shift 1). ``mix[t, k]`` is 1 when kernel tap k falls on the pair's row t, so the
    phase kernel is ``mix @ w``; read at position i + shift of a 2-tap, padding-1 convolution.
    """
    if scale < 2:
        raise ValueError(f"phase decomposition needs an up-sampling factor of 2 or more, got {scale}")
    distinct: list[tuple[int, torch.Tensor]] = []
    index: list[int] = []
    for a in range(scale):
        rows = [math.floor((a + k - 1) / scale) for k in range(3)]  # offsets in {-1, 0, 1}
        shift = 1 if max(rows) == 1 else 0
        mix = torch.zeros(2, 3, dtype=torch.float64)
        for k, r in enumerate(rows):
            mix[r - shift + 1, k] = 1
        found = next((i for i, (s, mx) in enumerate(distinct) if s == shift and torch.equal(mx, mix)), None)
        if found is None:
            distinct.append((shift, mix))
            found = len(distinct) - 1
        index.append(found)
    return distinct, index


class PhaseUpConv2d(nn.Module):
    """relu(conv3x3(nearest_up(x, scale))) computed on x: one 2x2 convolution (padding 1) whose
    outputs are the distinct phase kernels of every output phase pair, then interleaved."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, scale: int, tile: int = TILE_2X2):
        super().__init__()
        distinct, self.index = phase_mixes(scale)
        self.shifts = [s for s, _ in distinct]
        mixes = torch.stack([mx for _, mx in distinct]).to(weight.device)  # (P, 2, 3)
        w = torch.einsum("atk,bsl,ockl->abocts", mixes, mixes, weight.detach().double())
        p, o, c = len(distinct), weight.shape[0], weight.shape[1]
        self.conv = Conv2dFast(w.reshape(p * p * o, c, 2, 2).to(weight.dtype), bias.repeat(p * p), 1, tile)
        self.scale, self.phases, self.out_channels = scale, p, o

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        s, o, p = self.scale, self.out_channels, self.phases
        z = self.conv(x).permute(0, 2, 3, 1)  # (N, h + 1, w + 1, P²·O)
        out = z.new_empty(n, s * h, s * w, o)
        for a in range(s):
            for b in range(s):
                pa, pb = self.index[a], self.index[b]
                sa, sb = self.shifts[pa], self.shifts[pb]
                group = pa * p + pb
                part = z[:, sa : sa + h, sb : sb + w, group * o : (group + 1) * o]
                torch.clamp(part, min=0, out=out[:, a::s, b::s])
        return out.permute(0, 3, 1, 2)


# --- SPADE decoder -------------------------------------------------------------------------------


def spectral_kernel(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """weight_orig / sigma with sigma = uᵀ·W·v from the stored vectors (inference: no iteration)."""
    if prefix + "weight_orig" not in state:
        return state[prefix + "weight"]
    w = state[prefix + "weight_orig"]
    sigma = torch.dot(state[prefix + "weight_u"], w.flatten(1) @ state[prefix + "weight_v"])
    return w / sigma


def _instance_stats(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample and channel: mean and 1/sqrt(biased variance + eps), each (N, C, 1, 1)."""
    var, mean = torch.var_mean(x, dim=(2, 3), unbiased=False, keepdim=True)
    return mean, (var + eps).rsqrt_()


def _repeat_view(t: torch.Tensor, scale: int) -> torch.Tensor:
    """(N, C, s·h, s·w) as (N, C, h, s, w, s): a view, for broadcasting an un-up-sampled map."""
    if scale == 1:
        return t
    hh, ww = t.shape[2:]
    return t.unflatten(3, (ww // scale, scale)).unflatten(2, (hh // scale, scale))


class FastSPADE(nn.Module):
    """The modulation of one SPADE layer from its hidden label map: gamma and beta as one conv."""

    def __init__(self, state: dict[str, torch.Tensor], prefix: str, tile: int):
        super().__init__()
        gamma_w, beta_w = state[prefix + "mlp_gamma.weight"], state[prefix + "mlp_beta.weight"]
        bias = torch.cat([state[prefix + "mlp_gamma.bias"] + 1, state[prefix + "mlp_beta.bias"]])
        self.conv = Conv2dFast(torch.cat([gamma_w, beta_w]), bias, 1, tile)
        self.channels = gamma_w.shape[0]

    def forward(
        self,
        x: torch.Tensor,
        stats: tuple[torch.Tensor, torch.Tensor],
        hidden: torch.Tensor,
        scale: int = 1,
        slope: float | None = 0.2,
    ) -> torch.Tensor:
        """act((x - mean)·rstd·(1 + gamma) + beta) at the hidden map's size; x may be smaller by
        ``scale`` (nearest up-sampling is then read through a broadcast view)."""
        mean, rstd = stats
        c = self.channels
        gb = self.conv(hidden)  # (N, 2C, H, W): 1 + gamma, beta
        g, b = gb[:, :c], gb[:, c:]
        g.mul_(rstd)
        b.addcmul_(g, mean, value=-1.0)
        _repeat_view(b, scale).addcmul_(x[:, :, :, None, :, None] if scale > 1 else x, _repeat_view(g, scale))
        if slope is not None:
            F.leaky_relu_(b, slope)
        return b


def _pointwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A bias-free 1x1 convolution as one matrix product over the pixels (x may be a channel slice
    of a channels-last map: its (pixels, C) view is then free)."""
    n, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    y = rows @ weight.view(weight.shape[0], c).t()
    return y.view(n, h, w, -1).permute(0, 3, 1, 2)


class FastSPADEBlock(nn.Module):
    """shortcut + conv_1(act(SPADE(conv_0(act(SPADE(x)))))) with the SPADE convs of the label map
    computed elsewhere (all layers of one resolution at once)."""

    def __init__(self, state: dict[str, torch.Tensor], prefix: str, tile: int):
        super().__init__()
        w0, w1 = spectral_kernel(state, prefix + "conv_0."), spectral_kernel(state, prefix + "conv_1.")
        self.conv_0 = Conv2dFast(w0, state[prefix + "conv_0.bias"], 1, tile)
        self.conv_1 = Conv2dFast(w1, state[prefix + "conv_1.bias"], 1, tile)
        self.norm_0 = FastSPADE(state, prefix + "norm_0.", tile)
        self.norm_1 = FastSPADE(state, prefix + "norm_1.", tile)
        self.learned_shortcut = prefix + "conv_s.weight_orig" in state or prefix + "conv_s.weight" in state
        if self.learned_shortcut:
            ws = spectral_kernel(state, prefix + "conv_s.")
            self.register_buffer("conv_s", ws.detach().clone().contiguous(memory_format=torch.channels_last))
            self.norm_s = FastSPADE(state, prefix + "norm_s.", tile)

    def forward(self, x: torch.Tensor, hidden: list[torch.Tensor], scale: int = 1) -> torch.Tensor:
        """``x`` at 1/scale of the block's resolution (to be nearest up-sampled); ``hidden`` the
        label maps of norm_0, norm_1 (and norm_s) at the block's resolution."""
        stats = _instance_stats(x)
        if self.learned_shortcut:
            s = self.norm_s(x, stats, hidden[2], scale, slope=None)
            shortcut = _pointwise(s, self.conv_s.to(s.dtype))
        else:
            shortcut = x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="nearest")
        dx = self.conv_0(self.norm_0(x, stats, hidden[0], scale))
        dx = self.norm_1(dx, _instance_stats(dx), hidden[1])
        return self.conv_1(dx, residual=shortcut)


class FastSPADEDecoder(nn.Module):
    """The SPADE decoder (256x64x64 -> 3x512x512 in (0, 1)), built from its state dict."""

    MIDDLE = 6

    def __init__(self, state: dict[str, torch.Tensor], tile: int = TILE_3X3, tile_2x2: int = TILE_2X2):
        super().__init__()
        state = {k: v.detach().float() if v.is_floating_point() else v for k, v in state.items()}
        self.fc = Conv2dFast(state["fc.weight"], state["fc.bias"], 1, tile)
        names = [f"G_middle_{i}" for i in range(self.MIDDLE)]
        self.blocks = nn.ModuleList(FastSPADEBlock(state, f"{n}.", tile) for n in [*names, "up_0", "up_1"])
        # The label convolutions of every SPADE layer, grouped by resolution (scale 1, 2, 4).
        self.layouts: list[list[str]] = []
        convs = []
        for scale, blocks in ((1, names), (2, ["up_0"]), (4, ["up_1"])):
            layers = [
                f"{b}.{n}."
                for b in blocks
                for n in ("norm_0", "norm_1", "norm_s")
                if f"{b}.{n}.mlp_shared.0.weight" in state
            ]
            weight = torch.cat([state[p + "mlp_shared.0.weight"] for p in layers])
            bias = torch.cat([state[p + "mlp_shared.0.bias"] for p in layers])
            if scale == 1:
                convs.append(Conv2dFast(weight, bias, 1, tile))
            else:
                convs.append(PhaseUpConv2d(weight, bias, scale, tile_2x2))
            self.layouts.append(layers)
        self.label_convs = nn.ModuleList(convs)
        self.hidden = state[self.layouts[0][0] + "mlp_shared.0.weight"].shape[0]
        self.conv_img = Conv2dFast(state["conv_img.0.weight"], state["conv_img.0.bias"], 1, 0)

    def _label_maps(self, label: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per resolution, the ReLU'd hidden map of each SPADE layer (channel slices of one map)."""
        maps = []
        for conv, layers in zip(self.label_convs, self.layouts, strict=True):
            h = conv(label)
            if isinstance(conv, Conv2dFast):
                h = h.relu_()
            maps.append([h[:, i * self.hidden : (i + 1) * self.hidden] for i in range(len(layers))])
        return maps

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """(B, 256, 64, 64) -> (B, 3, 512, 512) in (0, 1)."""
        feature = feature.contiguous(memory_format=torch.channels_last)
        middle, up0, up1 = self._label_maps(feature)
        x = self.fc(feature)
        for i in range(self.MIDDLE):
            x = self.blocks[i](x, middle[2 * i : 2 * i + 2])
        x = self.blocks[self.MIDDLE](x, up0, scale=2)
        x = self.blocks[self.MIDDLE + 1](x, up1, scale=2)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.sigmoid(F.pixel_shuffle(x, 2))


# --- Warping module ------------------------------------------------------------------------------


def _fold(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.Module
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the one convolution equal to bn(conv(x)) in eval mode (float64 maths)."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() - bn.running_mean.double() * scale
    w = weight.double() * scale.view(-1, *([1] * (weight.dim() - 1)))
    b = (bias.double() if bias is not None else torch.zeros_like(scale)) * scale + shift
    return w.to(weight.dtype), b.to(weight.dtype)


class FastDownBlock3d(nn.Module):
    """avg_pool(1, 2, 2)(relu(bn(conv3x3x3(x)))) with the norm folded."""

    def __init__(self, block: nn.Module, tile: int):
        super().__init__()
        self.conv = Conv3dFast(*_fold(block.conv.weight, block.conv.bias, block.norm), 1, tile)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(self.conv(x, relu=True), kernel_size=(1, 2, 2))


_MIX2 = torch.stack([mx for _, mx in phase_mixes(2)[0]])  # (2 phases, 2 taps, 3 kernel taps)


class FastUpBlock3d(nn.Module):
    """relu(bn(conv3x3x3(nearest_up(1, 2, 2)(x)))) on the small map: one (3, 2, 2) convolution
    (padding 1) with 4·O outputs, output phase (a, b) read at offset (a, b)."""

    def __init__(self, block: nn.Module, tile: int):
        super().__init__()
        weight, bias = _fold(block.conv.weight, block.conv.bias, block.norm)
        mix = _MIX2.to(weight.device)
        w = torch.einsum("atk,bsl,ocdkl->abocdts", mix, mix, weight.double())
        o, c = weight.shape[:2]
        self.conv = Conv3dFast(w.reshape(4 * o, c, 3, 2, 2).to(weight.dtype), bias.repeat(4), 1, 0)
        self.out_channels = o

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, d, h, w = x.shape
        o = self.out_channels
        z = self.conv(x).permute(0, 2, 3, 4, 1)  # (N, D, h + 1, w + 1, 4·O)
        out = z.new_empty(n, d, 2 * h, 2 * w, o)
        for a in (0, 1):
            for b in (0, 1):
                g = 2 * a + b
                torch.clamp(
                    z[:, :, a : a + h, b : b + w, g * o : (g + 1) * o], min=0, out=out[:, :, a::2, b::2]
                )
        return out.permute(0, 4, 1, 2, 3)


class FFTConv3dFast(nn.Module):
    """A stride-1 'same' 3-D convolution with a wide kernel: :class:`FFTConv3d` on float32 CPU
    inputs (its kernel spectrum made on first use), else ``F.conv3d``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, padding, tile: int):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        b = bias.detach().clone() if bias is not None else weight.new_zeros(weight.shape[0])
        self.register_buffer("bias", b)
        self.padding, self.tile = padding, tile
        self.fft: FFTConv3d | None = None

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, padding={self.padding}, tile={self.tile}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tile and _winograd_ready(x):
            if self.fft is None:
                self.fft = FFTConv3d(self.weight, self.bias, self.tile)
            return self.fft(x)
        return F.conv3d(x, self.weight.to(x.dtype), self.bias.to(x.dtype), padding=self.padding)


class TapSumConv2d(nn.Module):
    """A stride-1 'same' 2-D convolution with few outputs and many inputs: one matrix product
    contracts the channels for every kernel tap at once, then the k² shifted tap maps are summed.

    Why: the occlusion head (2272 -> 1 channel, 7x7) gives a direct convolution a single output
    to vectorise over, which runs at a few percent of the matrix-product rate; as
    (O·k², C) x (C, pixels) it is one well-shaped product plus k² cheap additions.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, padding: int):
        super().__init__()
        out_ch, in_ch, kh, kw = weight.shape
        if kh != kw or kh != 2 * padding + 1:
            raise ValueError(f"TapSumConv2d needs a 'same' square kernel, got {tuple(weight.shape)}")
        # (k·k·O, C): row (u·k + v)·O + o is tap (u, v) of output o.
        taps = weight.detach().permute(2, 3, 0, 1).reshape(kh * kw * out_ch, in_ch)
        self.register_buffer("taps", taps.clone())
        b = bias.detach().clone() if bias is not None else weight.new_zeros(out_ch)
        self.register_buffer("bias", b)
        self.kernel, self.padding, self.out_channels = kh, padding, out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k, p, o = self.kernel, self.padding, self.out_channels
        z = torch.matmul(self.taps.to(x.dtype), x.reshape(n, c, h * w))  # (N, k²·O, h·w)
        z = F.pad(z.view(n, k * k * o, h, w), (p, p, p, p)).view(n, k, k, o, h + 2 * p, w + 2 * p)
        out = self.bias.to(z.dtype).view(1, o, 1, 1).expand(n, o, h, w).clone()
        for u in range(k):
            for v in range(k):
                out += z[:, u, v, :, u : u + h, v : v + w]
        return out


class _FoldedConv(nn.Module):
    """A convolution with the batch norm after it folded in (the norm becomes an identity)."""

    def __init__(
        self,
        conv: nn.Module,
        bn: nn.Module | None,
        tile: int,
        channels_last: bool = True,
        contiguous: bool = False,
    ):
        super().__init__()
        self.contiguous = contiguous
        weight, bias = _fold(conv.weight, conv.bias, bn) if bn is not None else (conv.weight, conv.bias)
        pad = conv.padding[0]
        if weight.dim() == 5:
            self.conv = Conv3dFast(weight, bias, pad, tile, channels_last)
        else:
            self.conv = Conv2dFast(weight, bias, pad, tile)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y.contiguous() if self.contiguous else y


def accelerate_warping(
    warping: nn.Module, tile: int = TILE_3D, tile_7: int = TILE_7X7, tile_fft: int = FFT_TILE
) -> nn.Module:
    """Swap the warping module's convolution blocks (in place) for the fast equivalents; the
    module's own forward (grids, sampling, softmax) is kept. Returns ``warping``."""
    dm = warping.dense_motion_network
    hourglass = dm.hourglass
    with torch.no_grad():
        downs = hourglass.encoder.down_blocks
        for i, block in enumerate(downs):
            downs[i] = FastDownBlock3d(block, tile)
        ups = hourglass.decoder.up_blocks
        for i, block in enumerate(ups):
            ups[i] = FastUpBlock3d(block, tile)
        # Its output feeds the mask head (direct conv, fastest on NCDHW with 22 outputs) and the
        # occlusion head's depth-into-channels view: contiguous NCDHW serves both without copies.
        hourglass.decoder.conv = _FoldedConv(
            hourglass.decoder.conv, hourglass.decoder.norm, tile, contiguous=True
        )
        hourglass.decoder.norm = nn.Identity()
        if tile_fft:
            dm.mask = FFTConv3dFast(dm.mask.weight, dm.mask.bias, dm.mask.padding, tile_fft)
        else:
            dm.mask = _FoldedConv(dm.mask, None, tile_7, channels_last=False)
        dm.occlusion = TapSumConv2d(dm.occlusion.weight, dm.occlusion.bias, dm.occlusion.padding[0])
        warping.third.conv = _FoldedConv(warping.third.conv, warping.third.norm, TILE_3X3)
        warping.third.norm = nn.Identity()
    return warping.eval().requires_grad_(False)


def accelerate(
    networks: LivePortraitNetworks, *, tile: int = TILE_3X3, tile_3d: int = TILE_3D
) -> LivePortraitNetworks:
    """``networks`` with the warping module and the SPADE decoder swapped for fast equivalents.

    The warping module is changed in place (its convolution blocks); the decoder is replaced by a
    :class:`FastSPADEDecoder` built from its weights. The other networks are shared as they are.
    For inference only (eval mode, no gradients). Outputs equal the plain networks' to about 1e-5
    (Winograd rounding), the 8-bit frames within one grey level.
    """
    decoder = FastSPADEDecoder(networks.decoder.state_dict(), tile=tile).to(networks.decoder.fc.weight.device)
    warping = accelerate_warping(networks.warping, tile_3d).eval()
    return replace(networks, warping=warping, decoder=decoder.eval().requires_grad_(False))
