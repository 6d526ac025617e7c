"""The accelerated LivePortrait warping module and SPADE decoder compute the plain networks' function.

Each rewrite is checked on its own against plain PyTorch ops on small odd shapes (partial
Winograd tiles, borders, batch 2), with the speed thresholds lowered so that small layers take
the fast routes too; then whole networks of small configurations, in float64 (the rewrites'
maths, exact to rounding) and float32 (with Winograd); and once, marked slow, the full-size
networks on one random input.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from animatica.fomm.fast import bf16_is_fast
from animatica.liveportrait import fast
from animatica.liveportrait.checkpoint import random_networks
from animatica.liveportrait.dense_motion import DownBlock3d, UpBlock3d
from animatica.liveportrait.spade import SPADEDecoder
from animatica.liveportrait.warping import WarpingNetwork


@pytest.fixture
def force_winograd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small test layers take the Winograd routes too (the real thresholds are for speed only)."""
    monkeypatch.setattr(fast, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(fast, "WINOGRAD_MIN_CHANNELS_3D", 1)
    monkeypatch.setattr(fast, "WINOGRAD_MIN_PIXELS", 1)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def randomize_batch_norms(module: nn.Module, seed: int = 0) -> None:
    """Eval-mode statistics far from the identity, so that a wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.BatchNorm2d | nn.BatchNorm3d):
                for tensor, low, high in (
                    (bn.running_mean, -0.5, 0.5),
                    (bn.running_var, 0.3, 2.0),
                    (bn.weight, 0.5, 1.5),
                    (bn.bias, -0.3, 0.3),
                ):
                    tensor.copy_(torch.empty(tensor.shape).uniform_(low, high, generator=g))


# --- single ops ----------------------------------------------------------------------------------


def test_phase_mixes_need_upsampling() -> None:
    with pytest.raises(ValueError, match="factor"):
        fast.phase_mixes(1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_phase_mixes_reproduce_nearest_upsampling_then_3_taps(scale: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(7, dtype=torch.float64)
    w = torch.randn(3, dtype=torch.float64)
    up = x.repeat_interleave(scale)
    expected = F.conv1d(up.view(1, 1, -1), w.view(1, 1, 3), padding=1).flatten()
    distinct, index = fast.phase_mixes(scale)
    padded = F.pad(x, (1, 1))  # 2-tap convolution with padding 1: output j reads x[j-1], x[j]
    for a in range(scale):
        shift, mix = distinct[index[a]]
        taps = mix @ w
        got = torch.stack([padded[i + shift] * taps[0] + padded[i + shift + 1] * taps[1] for i in range(7)])
        assert torch.allclose(got, expected[a::scale], atol=1e-12)
    # Phases 1 and 2 of x4 read the same row only: one distinct kernel, three in all.
    if scale == 4:
        assert len(distinct) == 3


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("winograd", [False, True])
def test_phase_up_conv_equals_conv_of_upsampled_map(scale: int, winograd: bool, monkeypatch) -> None:
    if winograd:
        monkeypatch.setattr(fast, "WINOGRAD_MIN_PIXELS", 1)
    torch.manual_seed(1)
    x = torch.randn(2, 20, 9, 11)
    w = torch.randn(24, 20, 3, 3) / 14
    b = torch.randn(24)
    layer = fast.PhaseUpConv2d(w, b, scale, tile=5 if winograd else 0)
    expected = F.relu(F.conv2d(F.interpolate(x, scale_factor=scale, mode="nearest"), w, b, padding=1))
    got = layer(x)
    assert got.shape == expected.shape
    assert max_diff(got, expected) < 5e-5


@pytest.mark.parametrize(
    ("kernel", "tile", "size"), [(3, 6, (5, 13, 17)), (3, 4, (4, 8, 9)), (7, 2, (6, 11, 10))]
)
def test_winograd_conv3d_equals_conv3d(kernel: int, tile: int, size: tuple[int, int, int]) -> None:
    torch.manual_seed(2)
    x = torch.randn(2, 12, *size)
    w = torch.randn(10, 12, kernel, kernel, kernel) / (12 * kernel**3) ** 0.5
    b = torch.randn(10)
    layer = fast.WinogradConv3d(w, b, kernel // 2, tile)
    expected = F.conv3d(x, w, b, padding=kernel // 2)
    assert max_diff(layer(x), expected) < 1e-4
    assert max_diff(layer(x, relu=True), expected.relu()) < 1e-4


def test_winograd_conv3d_refuses_other_kernels() -> None:
    with pytest.raises(ValueError, match="same"):
        fast.WinogradConv3d(torch.randn(4, 4, 3, 5, 5), None, 1, 4)


@pytest.mark.usefixtures("force_winograd")
def test_conv2d_fast_adds_residual_on_both_routes() -> None:
    torch.manual_seed(3)
    x, res = torch.randn(1, 8, 13, 10), torch.randn(1, 6, 13, 10)
    w, b = torch.randn(6, 8, 3, 3) / 8, torch.randn(6)
    expected = F.conv2d(x, w, b, padding=1) + res
    assert max_diff(fast.Conv2dFast(w, b, 1, tile=6)(x, residual=res), expected) < 5e-5
    assert max_diff(fast.Conv2dFast(w, b, 1, tile=0)(x, residual=res), expected) < 5e-6


@pytest.mark.usefixtures("force_winograd")
def test_hourglass_blocks_with_folded_norms() -> None:
    torch.manual_seed(4)
    down, up = DownBlock3d(6, 8).eval(), UpBlock3d(8, 5).eval()
    randomize_batch_norms(down, 1)
    randomize_batch_norms(up, 2)
    x = torch.randn(2, 6, 3, 12, 14)
    with torch.no_grad():
        y = down(x)
        assert max_diff(fast.FastDownBlock3d(down, tile=4)(x), y) < 1e-4
        assert max_diff(fast.FastUpBlock3d(up, tile=4)(y), up(y)) < 1e-5


def test_pointwise_reads_channel_slices() -> None:
    torch.manual_seed(5)
    big = torch.randn(2, 10, 5, 7).contiguous(memory_format=torch.channels_last)
    x = big[:, 4:]
    w = torch.randn(3, 6, 1, 1)
    assert max_diff(fast._pointwise(x, w), F.conv2d(x, w)) < 1e-5


# --- whole networks, small configurations -------------------------------------------------------


def small_decoder(seed: int = 0) -> SPADEDecoder:
    """The decoder's structure (6 middle blocks, two up-sampling blocks, spectral norms) at 1/16 width."""
    torch.manual_seed(seed)
    decoder = SPADEDecoder(input_channels=16, out_channels=8).eval()
    with torch.no_grad():  # biases away from zero, so that a lost "1 +" or a swapped beta shows
        for name, p in decoder.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.3, 0.3)
    return decoder


def test_fast_decoder_is_the_same_maths_in_float64() -> None:
    decoder = small_decoder()
    fast_decoder = fast.FastSPADEDecoder(decoder.state_dict()).eval()
    x = torch.randn(2, 16, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = decoder.double()(x)
        got = fast_decoder(x)
    assert got.shape == (2, 3, 32, 40)
    assert max_diff(got, expected) < 1e-6  # float32 weights; "1 + gamma" folded into a float32 bias


@pytest.mark.usefixtures("force_winograd")
def test_fast_decoder_with_winograd_in_float32() -> None:
    decoder = small_decoder(1)
    fast_decoder = fast.FastSPADEDecoder(decoder.state_dict()).eval()
    x = torch.randn(1, 16, 6, 7)
    with torch.no_grad():
        expected, got = decoder(x), fast_decoder(x)
    assert max_diff(got, expected) < 1e-4


def small_warping(seed: int = 0) -> WarpingNetwork:
    """The warping module's structure with a shallow, narrow hourglass and a (8, 4, 16, 16) volume."""
    torch.manual_seed(seed)
    warping = WarpingNetwork(
        feature_channel=8, reshape_depth=4, out_channels=16, block_expansion=8, num_blocks=3, max_features=32
    ).eval()
    randomize_batch_norms(warping, seed)
    return warping


@pytest.mark.usefixtures("force_winograd")
def test_accelerated_warping_matches_plain() -> None:
    warping = small_warping()
    accelerated = fast.accelerate_warping(copy.deepcopy(warping), tile=4, tile_7=2)
    assert isinstance(accelerated.dense_motion_network.hourglass.decoder.up_blocks[0], fast.FastUpBlock3d)
    torch.manual_seed(6)
    feature = torch.randn(1, 8, 4, 16, 16)
    kp_d = torch.rand(2, 21, 3) * 1.6 - 0.8
    kp_s = kp_d + 0.1 * torch.randn(2, 21, 3)
    with torch.no_grad():
        expected, got = warping(feature, kp_d, kp_s), accelerated(feature, kp_d, kp_s)
    for key in ("out", "occlusion_map", "deformation"):
        assert got[key].shape == expected[key].shape
        assert max_diff(got[key], expected[key]) < 1e-4, key


# --- full size -----------------------------------------------------------------------------------


def to_u8(frame: torch.Tensor) -> torch.Tensor:
    return (frame.clamp(0, 1) * 255).to(torch.uint8).int()


@pytest.fixture(scope="module")
def full_size() -> dict[str, object]:
    """Plain and accelerated full-size networks (random weights, batch norms off the identity),
    and the plain outputs on one random input."""
    plain = random_networks(seed=3)
    randomize_batch_norms(plain.warping, 3)
    reference = copy.deepcopy(plain)
    accelerated = fast.accelerate(plain)
    torch.manual_seed(7)
    feature = torch.randn(1, 32, 16, 64, 64)
    kp_d = torch.rand(1, 21, 3) * 1.4 - 0.7
    kp_s = kp_d + 0.05 * torch.randn(1, 21, 3)
    with torch.inference_mode():
        warped = reference.warping(feature, kp_d, kp_s)
        frame = reference.decoder(warped["out"])
    return {"accelerated": accelerated, "inputs": (feature, kp_d, kp_s), "warped": warped, "frame": frame}


@pytest.mark.slow
@pytest.mark.skipif(
    not bf16_is_fast(), reason="no bf16 units here (AVX512-BF16, AMX or a bf16 GPU): bf16 would be emulated"
)
def test_bf16_autocast_keeps_40_db(full_size: dict) -> None:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        frame = full_size["accelerated"].decoder(full_size["warped"]["out"]).float()
    mse = float((frame.double() - full_size["frame"].double()).pow(2).mean())
    assert 10 * torch.log10(torch.tensor(1.0 / mse)) >= 40
