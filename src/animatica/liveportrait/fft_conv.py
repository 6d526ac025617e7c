"""A wide 3-D convolution with few outputs computed through 2-D Fourier transforms of tiles.

Why: the warping module's mask head is a 7x7x7 convolution from 142 to 22 channels over the
(16, 64, 64) motion volume: 140 GFLOP per frame as a direct convolution, 40 % of the module. Its
49 taps per depth slice make Winograd numerically useless beyond tiny tiles, but a Fourier
transform is exact to float32 rounding at any tile size: per tile, a (k x k) correlation is a
product per frequency. Height and width go through ``rfft2`` in overlapping tiles (overlap-save);
the short depth axis stays direct, its taps becoming accumulated batched products of the same
transformed tiles. With 22-pixel tiles (28-point transforms, 3x3 tiles over 64x64) the products
are ~11 GFLOP and the transforms a few more, for ~3x less time than the direct convolution (it
runs near the matrix-product rate; the products here run as real matrices, each complex
multiply-add as four real ones). The cost is memory: the kernel's spectrum, kept as those real
(kd, frequencies, 2C, 2O) matrices, is ~150 MB for the mask head.
"""

import torch
import torch.nn.functional as F
from torch import nn

# Output tile side; the transform size is tile + kernel - 1 (28 = 2²·7 for the 7-tap mask head). Over
# a 64-pixel side, 3 tiles of 22 keep the products per output pixel, tiles·n·(n/2 + 1) / 64², low,
# the spectrum moderate (it grows as n²) and the tile overlap small.
FFT_TILE = 22
# Per block of depth slices, at most about this many bytes of transformed input.
FFT_BLOCK_BYTES = 1 << 27


class FFTConv3d(nn.Module):
    """Stride-1 'same' (kd, k, k) convolution with zero padding: overlap-save ``rfft2`` tiles over
    height and width, depth taps direct. Takes and returns (N, C, D, H, W) float32."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, tile: int = FFT_TILE):
        super().__init__()
        out_ch, in_ch, kd, kh, kw = weight.shape
        if kh != kw or kd % 2 == 0 or kh % 2 == 0:
            raise ValueError(f"FFTConv3d needs an odd, square-faced kernel, got {tuple(weight.shape)}")
        n = tile + kh - 1
        w = weight.detach().double()
        # Cross-correlation is a product with the kernel's conjugate spectrum (real kernel):
        # y[i] = Σ_u x[i + u] w[u] for i < tile never wraps around an n-point transform.
        spectrum = torch.fft.rfft2(w, s=(n, n)).conj()  # (O, C, kd, n, n/2 + 1)
        freqs = n * (n // 2 + 1)
        spectrum = spectrum.permute(2, 3, 4, 1, 0).reshape(kd, freqs, in_ch, out_ch)
        # A complex product as a real one: the input's (re, im) pairs, interleaved along the
        # channels, times [[re, im], [-im, re]] blocks gives the output's (re, im) pairs.
        re, im = spectrum.real, spectrum.imag
        real_form = torch.stack([torch.stack([re, im], -1), torch.stack([-im, re], -1)], 3)
        real_form = real_form.reshape(kd, freqs, 2 * in_ch, 2 * out_ch)
        self.register_buffer("spectrum", real_form.float().contiguous())
        b = bias.detach() if bias is not None else weight.new_zeros(out_ch)
        self.register_buffer("bias", b.float().clone())
        self.tile, self.size, self.kernel, self.depth_kernel = tile, n, kh, kd
        self.in_channels, self.out_channels = in_ch, out_ch

    def extra_repr(self) -> str:
        k, kd = self.kernel, self.depth_kernel
        return f"{self.in_channels}, {self.out_channels}, kernel_size={kd}x{k}x{k}, tile={self.tile}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_img, c, d, h, w = x.shape
        m, n, k, kd, o = self.tile, self.size, self.kernel, self.depth_kernel, self.out_channels
        p, pd = k // 2, kd // 2
        th, tw = -(-h // m), -(-w // m)
        tiles, freqs = th * tw, n * (n // 2 + 1)
        # (N, C, D + 2pd, th·m + k - 1, tw·m + k - 1): zero padding covering every tile.
        padded = F.pad(x, (p, tw * m + k - 1 - w - p, p, th * m + k - 1 - h - p, pd, pd))
        s = padded.stride()
        out = x.new_empty(n_img, o, d, th * m, tw * m)
        # Depth slices per block: input spectra of (slices + kd - 1) slices fit the budget.
        slice_bytes = freqs * tiles * c * 8
        per_block = max(1, min(d, FFT_BLOCK_BYTES // slice_bytes - (kd - 1)))
        for img in range(n_img):
            for z0 in range(0, d, per_block):
                zs = min(per_block, d - z0)
                zin = zs + kd - 1
                src = padded[img, :, z0 : z0 + zin]
                tiles_view = src.as_strided(
                    (c, zin, th, tw, n, n), (s[1], s[2], m * s[3], m * s[4], s[3], s[4]), src.storage_offset()
                )
                spec = torch.fft.rfft2(tiles_view.contiguous())  # (C, zin, th, tw, n, n/2 + 1)
                # (freqs, zin·tiles, 2C) real: per frequency, one row per (depth slice, tile).
                xf = torch.view_as_real(spec.permute(4, 5, 1, 2, 3, 0).contiguous())
                xf = xf.view(freqs, zin * tiles, 2 * c)
                yf = torch.bmm(xf[:, : zs * tiles], self.spectrum[0])
                for t in range(1, kd):
                    yf.baddbmm_(xf[:, t * tiles : (t + zs) * tiles], self.spectrum[t])
                # (freqs, zs, th, tw, O) -> (O, zs, th, tw, n, n/2 + 1) -> spatial tiles
                yc = torch.view_as_complex(yf.view(n, n // 2 + 1, zs, th, tw, o, 2))
                y = torch.fft.irfft2(yc.permute(5, 2, 3, 4, 0, 1).contiguous(), s=(n, n))[..., :m, :m]
                dst = out[img, :, z0 : z0 + zs].view(o, zs, th, m, tw, m)
                dst.copy_(y.permute(0, 1, 2, 4, 3, 5))
        out += self.bias.view(1, -1, 1, 1, 1)
        if th * m != h or tw * m != w:
            out = out[:, :, :, :h, :w]
        return out
