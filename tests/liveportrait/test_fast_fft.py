"""The warping module's heads on the speed path: the Fourier-transform 3-D convolution (mask head)
and the tap-sum 2-D convolution (occlusion head) compute plain convolutions, on small odd shapes
(partial tiles, borders, batch 2), and the accelerated warping module uses them; under bf16
autocast the accelerated warping stays float32."""

import copy

import pytest
import torch
import torch.nn.functional as F
from tests.liveportrait.test_fast import max_diff, small_decoder, small_warping

from animatica.liveportrait import fast
from animatica.liveportrait.checkpoint import LivePortraitNetworks
from animatica.liveportrait.fft_conv import FFTConv3d


@pytest.mark.parametrize(
    ("kernel", "tile", "size"),
    [((7, 7, 7), 6, (5, 13, 17)), ((7, 7, 7), 22, (9, 11, 10)), ((3, 5, 5), 4, (4, 9, 8))],
)
def test_fft_conv3d_equals_conv3d(kernel: tuple, tile: int, size: tuple) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 12, *size)
    w = torch.randn(10, 12, *kernel) / (12 * kernel[0] * kernel[1] * kernel[2]) ** 0.5
    b = torch.randn(10)
    expected = F.conv3d(x, w, b, padding=tuple(k // 2 for k in kernel))
    got = FFTConv3d(w, b, tile)(x)
    assert got.shape == expected.shape
    assert max_diff(got, expected) < 2e-5


def test_fft_conv3d_splits_depth_into_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small transform budget processes the depth in several blocks: the same result."""
    torch.manual_seed(1)
    x = torch.randn(1, 6, 7, 10, 9)
    w, b = torch.randn(4, 6, 3, 3, 3) / 13, torch.randn(4)
    monkeypatch.setattr("animatica.liveportrait.fft_conv.FFT_BLOCK_BYTES", 1)
    assert max_diff(FFTConv3d(w, b, 5)(x), F.conv3d(x, w, b, padding=1)) < 2e-5


def test_fft_conv3d_refuses_even_kernels() -> None:
    with pytest.raises(ValueError, match="odd"):
        FFTConv3d(torch.randn(4, 4, 3, 4, 4), None, 6)


@pytest.mark.parametrize("out_channels", [1, 3])
def test_tap_sum_conv2d_equals_conv2d(out_channels: int) -> None:
    torch.manual_seed(2)
    x = torch.randn(2, 40, 9, 11)
    w, b = torch.randn(out_channels, 40, 7, 7) / 50, torch.randn(out_channels)
    expected = F.conv2d(x, w, b, padding=3)
    assert max_diff(fast.TapSumConv2d(w, b, 3)(x), expected) < 1e-5


def test_tap_sum_conv2d_refuses_other_paddings() -> None:
    with pytest.raises(ValueError, match="same"):
        fast.TapSumConv2d(torch.randn(1, 4, 7, 7), None, 2)


def test_accelerated_warping_heads_match_plain() -> None:
    warping = small_warping(3)
    accelerated = fast.accelerate_warping(copy.deepcopy(warping), tile_fft=6)
    dm = accelerated.dense_motion_network
    assert isinstance(dm.mask, fast.FFTConv3dFast)
    assert isinstance(dm.occlusion, fast.TapSumConv2d)
    torch.manual_seed(3)
    feature = torch.randn(1, 8, 4, 16, 16)
    kp_d = torch.rand(2, 21, 3) * 1.6 - 0.8
    kp_s = kp_d + 0.1 * torch.randn(2, 21, 3)
    with torch.no_grad():
        expected, got = warping(feature, kp_d, kp_s), accelerated(feature, kp_d, kp_s)
    assert dm.mask.fft is not None  # the Fourier route ran (float32 on the CPU)
    for key in ("out", "occlusion_map", "deformation"):
        assert max_diff(got[key], expected[key]) < 1e-4, key


@pytest.mark.parametrize("accelerated", [False, True], ids=["plain", "fast"])
def test_with_bf16_only_the_decoder_leaves_float32(accelerated: bool) -> None:
    """``render`` in bf16 decodes the float32 warping's result under bf16 autocast, on either path."""
    networks = LivePortraitNetworks(
        appearance=None, motion=None, warping=small_warping(4), decoder=small_decoder(4),
        stitching=None, eye=None, lip=None,
    )  # fmt: skip
    if accelerated:
        networks = fast.accelerate(networks)
    torch.manual_seed(5)
    feature = torch.randn(1, 8, 4, 16, 16)
    kp_d = torch.rand(1, 21, 3) * 1.6 - 0.8
    kp_s = kp_d + 0.1 * torch.randn(1, 21, 3)
    with torch.inference_mode():
        warped = networks.warping(feature, kp_d, kp_s)["out"]  # float32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            expected = networks.decoder(warped).float()
        got = networks.render(feature, kp_d, kp_s, torch.bfloat16)
        full_fp32 = networks.render(feature, kp_d, kp_s)
    assert got.dtype == torch.float32
    assert max_diff(got, expected) < 1e-6
    assert max_diff(got, full_fp32) > 0  # the decoder did take the bf16 route
