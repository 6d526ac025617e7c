"""Winograd minimal filtering F(m×m, r×r): stride-1 convolutions with fewer multiplications.

Why: on a CPU without fast low-precision arithmetic, FOMM inference is bound by 3x3 convolutions
(the generator's bottleneck alone is two thirds of the FLOPs). Winograd's algorithm computes an
m×m output tile from an α×α input tile (α = m + r - 1) with α² multiplications per channel pair
instead of m²·r², e.g. 36 instead of 144 for F(4×4, 3×3), and turns the multiplications of all
tiles into one batched matrix product, which is what the CPU does best.

The maths (Lavin & Gray 2015, "Fast Algorithms for Convolutional Neural Networks"), in 1-D:

    y = Aᵀ [(G g) ⊙ (Bᵀ d)]        y_i = Σ_k d_{i+k} g_k,  i < m,  k < r,  d of length α

and in 2-D, nesting it along both axes, Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A. The matrices come from
the Cook–Toom construction: the linear convolution c = h * g (h of length m) is a polynomial
product, computed exactly by evaluating both factors at α - 1 points and at infinity (the leading
coefficient), multiplying, and interpolating back; correlation is the transpose of that map in h.
With E, G the evaluation matrices of h and g and V the evaluation matrix of c (whose inverse
interpolates), c = V⁻¹ [(E h) ⊙ (G g)], so y = Eᵀ [(G g) ⊙ (V⁻ᵀ d)]: Aᵀ = Eᵀ, Bᵀ = V⁻ᵀ.

The matrices are built exactly in rational arithmetic; each row of Bᵀ is rescaled to small
integers (the inverse scale moves into G, which only touches the weights, once, in float64), so
the per-call data transform multiplies by exactly representable numbers.
"""

import functools
import math
import threading
from collections.abc import Iterator
from fractions import Fraction

import torch
from torch import nn

# Interpolation points in the order that keeps the transforms' magnitudes smallest; α - 1 are used.
_POINTS = (
    Fraction(0),
    Fraction(1),
    Fraction(-1),
    Fraction(2),
    Fraction(-2),
    Fraction(1, 2),
    Fraction(-1, 2),
    Fraction(3),
    Fraction(-3),
)

Matrix = list[list[Fraction]]


def _inverse(matrix: Matrix) -> Matrix:
    """Exact Gauss-Jordan inverse of a small non-singular rational matrix."""
    n = len(matrix)
    rows = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        head = rows[col][col]
        rows[col] = [v / head for v in rows[col]]
        for r in range(n):
            if r != col and rows[r][col] != 0:
                factor = rows[r][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [row[n:] for row in rows]


def _evaluation(points: tuple[Fraction, ...], length: int) -> Matrix:
    """Rows evaluate a polynomial of ``length`` coefficients at each point, then at infinity."""
    finite = [[p**k for k in range(length)] for p in points]
    return [*finite, [Fraction(int(k == length - 1)) for k in range(length)]]


def _integer_rows(bt: Matrix) -> list[Fraction]:
    """Per-row factors that turn each row of Bᵀ into coprime integers with a positive lead."""
    factors = []
    for row in bt:
        nonzero = [v for v in row if v != 0]
        lcm = math.lcm(*(v.denominator for v in nonzero))
        gcd = math.gcd(*(int(v * lcm) for v in nonzero))
        sign = 1 if nonzero[0] > 0 else -1
        factors.append(Fraction(sign * lcm, gcd))
    return factors


@functools.cache
def winograd_matrices(tile: int, kernel: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact F(tile, kernel) transforms as float64: Aᵀ (m, α), Bᵀ (α, α), G (α, r)."""
    alpha = tile + kernel - 1
    if tile < 1 or kernel < 1 or alpha - 1 > len(_POINTS):
        raise ValueError(f"no Winograd transform for tile {tile} and kernel {kernel}")
    points = _POINTS[: alpha - 1]
    v_inv = _inverse(_evaluation(points, alpha))  # interpolation: values -> coefficients of c
    e = _evaluation(points, tile)
    g = _evaluation(points, kernel)
    at = [[e[i][j] for i in range(alpha)] for j in range(tile)]
    bt = [[v_inv[j][i] for j in range(alpha)] for i in range(alpha)]
    scale = _integer_rows(bt)
    bt = [[v * s for v in row] for row, s in zip(bt, scale, strict=True)]
    g = [[v / s for v in row] for row, s in zip(g, scale, strict=True)]

    def as_tensor(m: Matrix) -> torch.Tensor:
        return torch.tensor([[float(v) for v in row] for row in m], dtype=torch.float64)

    return as_tensor(at), as_tensor(bt), as_tensor(g)


# Work buffers are reused between blocks and layers: a block's transformed tiles then stay in
# cache, and large fresh allocations (which the allocator returns to the OS and page-faults in
# again on every call) are avoided. Thread-local, so concurrent inference threads do not share.
_scratch = threading.local()

# Tiles per block are chosen so that one block's transformed input fits in about this many bytes:
# small enough for the per-core cache, large enough for an efficient batched product.
BLOCK_BYTES = 1 << 23
# Enough for every padded shape of one network (the LivePortrait decoder has ~10): a shape evicted
# between calls is zero-filled again on every frame.
_MAX_PADDED_BUFFERS = 16


def _buffer(slot: int, numel: int, like: torch.Tensor) -> torch.Tensor:
    """A flat reusable work buffer of at least ``numel`` elements, as ``like``'s dtype and device."""
    pool: dict[tuple, torch.Tensor] = _scratch.__dict__.setdefault("pool", {})
    # Tensors made under inference_mode cannot be written outside it (and the reverse is costly),
    # so each mode keeps its own buffers.
    key = (slot, like.dtype, like.device, torch.is_inference_mode_enabled())
    buf = pool.get(key)
    if buf is None or buf.numel() < numel:
        buf = like.new_empty(numel)
        pool[key] = buf
    return buf[:numel]


def _padded_buffer(
    shape: tuple[int, int, int, int], pad: int, h: int, w: int, like: torch.Tensor
) -> torch.Tensor:
    """A reusable (N, Hp, Wp, C) buffer whose border around the (h, w) interior at ``pad`` is zero.

    Only interiors are ever written, so a buffer found in the pool still has its zero border; the
    pool keeps the few shapes a network uses.
    """
    pool: dict[tuple, torch.Tensor] = _scratch.__dict__.setdefault("padded", {})
    key = (shape, pad, h, w, like.dtype, like.device, torch.is_inference_mode_enabled())
    buf = pool.pop(key, None)
    if buf is None:
        buf = like.new_zeros(shape)
    pool[key] = buf  # most recently used last
    while len(pool) > _MAX_PADDED_BUFFERS:
        pool.pop(next(iter(pool)))
    return buf


def pad_nhwc(
    x: torch.Tensor, pad: int, extent: tuple[int, int], pre: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """x (N, C, H, W) as an (N, Hp, Wp, C) = ``extent`` zero-padded NHWC work buffer, ``pad``
    zeros before the image on both axes (the rest after it). ``pre`` = (scale, shift) per channel
    applies relu(x·scale + shift) on the way, as a pre-activation block does; the padding stays
    zero, as after a real activation. The buffer is reused by the next call of the same shape."""
    n, c, h, w = x.shape
    padded = _padded_buffer((n, *extent, c), pad, h, w, x)
    inner = padded[:, pad : pad + h, pad : pad + w]
    source = x.permute(0, 2, 3, 1)  # NHWC view; free when x is channels-last
    if pre is None:
        inner.copy_(source)
    else:
        torch.addcmul(pre[1], source, pre[0], out=inner)
        inner.relu_()
    return padded


def release_buffers() -> None:
    """Drop this thread's work buffers, e.g. when inference is over for a while."""
    _scratch.__dict__.pop("pool", None)
    _scratch.__dict__.pop("padded", None)


class WinogradConv2d(nn.Module):
    """Stride-1, square-kernel convolution with zero padding, computed tile by tile with F(m, r).

    Activations are handled channels-last: an NHWC tile gather makes the input transform one
    (α², α²) × (α², tiles·C) matrix product and the multiplication one batched (tiles, C) × (C, O)
    product per tile position. Work proceeds in blocks of tile rows that fit in cache. Takes NCHW
    tensors in any memory format and returns NCHW tensors that are channels-last in memory.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        padding: int,
        tile: int = 4,
        block_bytes: int | None = None,
    ):
        super().__init__()
        self.block_bytes = block_bytes  # None: BLOCK_BYTES; wide layers do better with larger blocks
        out_ch, in_ch, kh, kw = weight.shape
        if kh != kw:
            raise ValueError(f"Winograd needs a square kernel, got {kh}x{kw}")
        at, bt, g = winograd_matrices(tile, kh)
        alpha = tile + kh - 1
        w = weight.detach().to(torch.float64)
        # U[a, b, c, o] = (G w[o, c] Gᵀ)[a, b], laid out (α², C, O) for the batched product.
        u = torch.einsum("ai,ocij,bj->abco", g.to(w.device), w, g.to(w.device))
        self.register_buffer("u", u.reshape(alpha * alpha, in_ch, out_ch).to(weight.dtype).contiguous())
        self.register_buffer("kb", torch.kron(bt, bt).to(weight))  # (α², α²): vec(d) -> vec(Bᵀ d B)
        self.register_buffer("ka", torch.kron(at, at).to(weight))  # (m², α²): vec(M) -> vec(Aᵀ M A)
        b = bias.detach() if bias is not None else weight.new_zeros(out_ch)
        self.register_buffer("bias", b.to(weight).clone())
        # Aᵀ's column for the point 1 is all ones, so adding the bias at transformed position
        # (1, 1) adds it to every output of the tile: Aᵀ (b e eᵀ) A = b 1 1ᵀ. One (tiles, O) add
        # instead of one per output.
        one = _POINTS.index(Fraction(1))
        self.bias_index = one * alpha + one
        self.tile = tile
        self.kernel = kh
        self.padding = padding
        self.in_channels = in_ch
        self.out_channels = out_ch

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel}, padding={self.padding}, "
            f"F({self.tile}x{self.tile}, {self.kernel}x{self.kernel})"
        )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return height + 2 * self.padding - self.kernel + 1, width + 2 * self.padding - self.kernel + 1

    def tile_grid(self, height: int, width: int) -> tuple[int, int]:
        """Tile rows and columns covering the output; the last ones may reach past its edge."""
        ho, wo = self.output_size(height, width)
        return -(-ho // self.tile), -(-wo // self.tile)

    def _padded(self, x: torch.Tensor, pre: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """(N, Hp, Wp, C) zero-padded NHWC input, covering every tile, pre-activation applied."""
        th, tw = self.tile_grid(*x.shape[2:])
        extent = (th * self.tile + self.kernel - 1, tw * self.tile + self.kernel - 1)
        return pad_nhwc(x, self.padding, extent, pre)

    def blocks(
        self, x: torch.Tensor, pre: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yield (image, first tile row, raw output block (rows, m, tw, m, O)), bias included.

        The block is a view of a work buffer that the next block overwrites: copy it out before
        asking for the next one. ``pre`` = (scale, shift) per input channel applies
        relu(x·scale + shift) to the input first, as a pre-activation residual block does.
        """
        n, c, h, w = x.shape
        m, alpha, o = self.tile, self.tile + self.kernel - 1, self.out_channels
        th, tw = self.tile_grid(h, w)
        padded = self._padded(x, pre)
        s = padded.stride()
        tile_bytes = alpha * alpha * max(c, o) * padded.element_size()
        rows_per_block = max(1, min(th, (self.block_bytes or BLOCK_BYTES) // (tile_bytes * tw)))
        for img in range(n):
            for r0 in range(0, th, rows_per_block):
                rows = min(rows_per_block, th - r0)
                t = rows * tw
                # Tile (i, j) element (u, v) is padded[m·i + u, m·j + v]: gather as (α, α, rows, tw, C).
                gathered = padded[img, r0 * m :].as_strided(
                    (alpha, alpha, rows, tw, c), (s[1], s[2], m * s[1], m * s[2], s[3])
                )
                size = alpha * alpha * t * max(c, o)  # every stage fits: m² < α²
                d = _buffer(0, size, padded)[: alpha * alpha * t * c].view(alpha, alpha, rows, tw, c)
                d.copy_(gathered)
                v = _buffer(1, size, padded)[: alpha * alpha * t * c].view(alpha * alpha, t, c)
                torch.mm(self.kb, d.view(alpha * alpha, t * c), out=v.view(alpha * alpha, t * c))
                prod = _buffer(0, size, padded)[: alpha * alpha * t * o].view(alpha * alpha, t, o)
                torch.bmm(v, self.u, out=prod)  # (α², tiles, C) @ (α², C, O)
                prod[self.bias_index] += self.bias
                y = _buffer(1, size, padded)[: m * m * t * o].view(m * m, t * o)
                torch.mm(self.ka, prod.view(alpha * alpha, t * o), out=y)
                yield img, r0, y.view(m, m, rows, tw, o).permute(2, 0, 3, 1, 4)

    def forward(
        self,
        x: torch.Tensor,
        pre: tuple[torch.Tensor, torch.Tensor] | None = None,
        relu: bool = False,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """conv(x) [+ residual] [then ReLU], as a channels-last NCHW tensor; ``pre`` as in :meth:`blocks`."""
        n, _, h, w = x.shape
        m = self.tile
        ho, wo = self.output_size(h, w)
        out = x.new_empty(n, ho, wo, self.out_channels)
        res = residual.permute(0, 2, 3, 1) if residual is not None else None
        for img, r0, block in self.blocks(x, pre):
            rows = slice(r0 * m, min(ho, (r0 + block.shape[0]) * m))
            for src, dst, part in _tile_pieces(
                block, out[img, rows], None if res is None else res[img, rows]
            ):
                if part is not None:
                    torch.add(src, part, out=dst)
                    if relu:
                        dst.relu_()
                elif relu:
                    torch.clamp(src, min=0, out=dst)
                else:
                    dst.copy_(src)
        return out.permute(0, 3, 1, 2)


def _tile_pieces(
    block: torch.Tensor, dst: torch.Tensor, res: torch.Tensor | None
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Match a block of tiles (rows, m, tw, m, O) with the (h, w, O) region it covers.

    Tiles past the output's edge are cropped: whole tiles and the partial last row/column of
    tiles are separate pieces, each a plain view on both sides (splitting one axis into two is
    always a view), so every piece is one copy with no intermediate.
    """
    _, m, _, _, o = block.shape
    h, w = dst.shape[:2]
    full_rows, rest_rows = divmod(h, m)
    full_cols, rest_cols = divmod(w, m)
    pieces = []
    for t0, t1, i1, y0, y1 in (
        (0, full_rows, m, 0, full_rows * m),
        (full_rows, full_rows + 1, rest_rows, full_rows * m, h),
    ):
        if t1 == t0 or i1 == 0:
            continue
        for c0, c1, j1, x0, x1 in (
            (0, full_cols, m, 0, full_cols * m),
            (full_cols, full_cols + 1, rest_cols, full_cols * m, w),
        ):
            if c1 == c0 or j1 == 0:
                continue
            shape = (t1 - t0, i1, c1 - c0, j1, o)
            part = res[y0:y1, x0:x1].view(shape) if res is not None else None
            pieces.append((block[t0:t1, :i1, c0:c1, :j1], dst[y0:y1, x0:x1].view(shape), part))
    return pieces
