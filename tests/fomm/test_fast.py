"""The inference-only fast FOMM networks compute the same function as the plain ones.

Each transform is checked on its own against the plain PyTorch layers (on odd sizes, so that
partial Winograd tiles and borders are exercised), then whole networks: a tiny configuration with
every fast path forced on, and once at full size with the name-derived vox-256 checkpoint.
"""

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from animatica.fomm import fast
from animatica.fomm.blocks import AntiAliasInterpolation2d, DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from animatica.fomm.checkpoint import load_state_strict, read_checkpoint
from animatica.fomm.config import config_from_dict, generator_kwargs, kp_detector_kwargs, load_config
from animatica.fomm.dense_motion import DenseMotionNetwork
from animatica.fomm.generator import OcclusionAwareGenerator
from animatica.fomm.keypoint_detector import KPDetector
from animatica.fomm.winograd import WinogradConv2d, release_buffers, winograd_matrices

KP_TOL = 1e-4
PREDICTION_TOL = 1e-3


@pytest.fixture
def force_winograd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small test layers take the Winograd path too (the real thresholds are for speed only)."""
    monkeypatch.setattr(fast, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(fast, "WINOGRAD_MIN_PIXELS", 1)


def randomize_batch_norms(module: nn.Module, generator: torch.Generator) -> None:
    """Eval-mode statistics far from the identity, so that a wrong fold shows."""
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.BatchNorm2d):
                for tensor, low, high in (
                    (bn.running_mean, -0.5, 0.5),
                    (bn.running_var, 0.3, 2.0),
                    (bn.weight, 0.5, 1.5),
                    (bn.bias, -0.3, 0.3),
                ):
                    tensor.copy_(torch.empty(tensor.shape).uniform_(low, high, generator=generator))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


# --- Winograd transforms ---------------------------------------------------------------------------


@pytest.mark.parametrize(("tile", "kernel"), [(2, 3), (4, 3), (6, 3), (3, 2), (5, 2), (2, 5)])
def test_winograd_matrices_compute_1d_correlation_exactly(tile: int, kernel: int) -> None:
    at, bt, g = winograd_matrices(tile, kernel)
    alpha = tile + kernel - 1
    assert at.shape == (tile, alpha) and bt.shape == (alpha, alpha) and g.shape == (alpha, kernel)
    assert torch.equal(bt, bt.round()), "the data transform is scaled to integers"
    rng = torch.Generator().manual_seed(tile * 10 + kernel)
    d = torch.randn(alpha, dtype=torch.float64, generator=rng)
    w = torch.randn(kernel, dtype=torch.float64, generator=rng)
    expected = torch.stack([(d[i : i + kernel] * w).sum() for i in range(tile)])
    assert max_diff(at @ ((g @ w) * (bt @ d)), expected) < 1e-12


def test_winograd_matrices_reject_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="no Winograd transform"):
        winograd_matrices(12, 3)
    with pytest.raises(ValueError, match="square kernel"):
        WinogradConv2d(torch.zeros(2, 2, 3, 1), None, padding=1)


@pytest.mark.parametrize(
    ("tile", "kernel", "padding", "size", "batch"),
    [
        (4, 3, 1, (13, 17), 2),
        (6, 3, 1, (9, 14), 1),
        (2, 3, 0, (7, 6), 1),
        (5, 2, 1, (11, 8), 2),
        (4, 5, 2, (10, 9), 1),
    ],
)
def test_winograd_conv_equals_conv2d(tile: int, kernel: int, padding: int, size: tuple, batch: int) -> None:
    rng = torch.Generator().manual_seed(0)
    c, o = 6, 5
    x = torch.randn(batch, c, *size, generator=rng)
    weight = torch.randn(o, c, kernel, kernel, generator=rng) / (c * kernel * kernel) ** 0.5
    bias = torch.randn(o, generator=rng)
    conv = WinogradConv2d(weight, bias, padding=padding, tile=tile)
    expected = F.conv2d(x.double(), weight.double(), bias.double(), padding=padding)
    out = conv(x)
    assert out.shape == expected.shape
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert max_diff(out, expected) < 2e-5
    # The reused work buffers (same shapes again) keep their zero borders: a second input is exact too.
    x2 = torch.randn(batch, c, *size, generator=rng)
    assert max_diff(conv(x2), F.conv2d(x2.double(), weight.double(), bias.double(), padding=padding)) < 2e-5


@pytest.mark.parametrize("block_bytes", [1, 1 << 30])
def test_winograd_fused_pre_activation_residual_and_relu(
    monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    """Fused extras equal their unfused maths, whether a block is one tile row or the whole image."""
    monkeypatch.setattr("animatica.fomm.winograd.BLOCK_BYTES", block_bytes)
    rng = torch.Generator().manual_seed(1)
    c = 8
    x = torch.randn(2, c, 11, 10, generator=rng)
    weight = torch.randn(c, c, 3, 3, generator=rng) / (9 * c) ** 0.5
    bias = torch.randn(c, generator=rng)
    scale, shift = torch.rand(c, generator=rng) + 0.5, torch.randn(c, generator=rng)
    conv = WinogradConv2d(weight, bias, padding=1)
    activated = torch.relu(x * scale.view(-1, 1, 1) + shift.view(-1, 1, 1))
    plain = F.conv2d(activated, weight, bias, padding=1)
    assert max_diff(conv(x, pre=(scale, shift)), plain) < 1e-5
    assert max_diff(conv(x, pre=(scale, shift), residual=x), plain + x) < 1e-5
    assert max_diff(conv(x, relu=True), torch.relu(F.conv2d(x, weight, bias, padding=1))) < 1e-5
    # 12x12 (a multiple of the tile) takes the fused residual path, 11x10 the cropped one.
    y = torch.randn(1, c, 12, 12, generator=rng)
    assert (
        max_diff(conv(y, residual=y, relu=True), torch.relu(F.conv2d(y, weight, bias, padding=1) + y)) < 1e-5
    )


def test_winograd_threads_do_not_share_work_buffers() -> None:
    rng = torch.Generator().manual_seed(2)
    weight = torch.randn(16, 16, 3, 3, generator=rng) / 12
    conv = WinogradConv2d(weight, None, padding=1)
    inputs = [torch.randn(1, 16, 24 + 4 * i, 20, generator=rng) for i in range(4)]
    expected = [F.conv2d(x, weight, padding=1) for x in inputs]
    results: dict[int, list[float]] = {}

    def work(i: int) -> None:
        results[i] = [max_diff(conv(inputs[i]), expected[i]) for _ in range(5)]
        release_buffers()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(max(results[i]) < 5e-5 for i in range(4))


# --- block equivalents -------------------------------------------------------------------------------


def test_fold_batch_norm_equals_conv_then_norm() -> None:
    rng = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    conv, bn = nn.Conv2d(5, 7, 3, padding=1), nn.BatchNorm2d(7)
    randomize_batch_norms(bn, rng)
    bn.eval()
    weight, bias = fast.fold_batch_norm(conv, bn)
    x = torch.randn(2, 5, 9, 7, generator=rng)
    with torch.no_grad():
        assert max_diff(F.conv2d(x, weight, bias, padding=1), bn(conv(x))) < 1e-5
        scale, shift = fast.batch_norm_affine(bn)
        y = torch.randn(2, 7, 4, 3, generator=rng)
        assert max_diff(y * scale.view(-1, 1, 1) + shift.view(-1, 1, 1), bn(y)) < 1e-5


@pytest.mark.parametrize("winograd", [False, True])
@pytest.mark.parametrize(
    ("make", "size"),
    [
        (lambda: ResBlock2d(12), (11, 9)),
        (lambda: UpBlock2d(10, 6), (7, 9)),
        (lambda: DownBlock2d(5, 8), (12, 10)),
        (lambda: SameBlock2d(4, 6), (9, 13)),
        (lambda: SameBlock2d(3, 8, kernel_size=7, padding=3), (10, 11)),
        # Tiny maps: im2col GEMM convolutions, and up-sampling without the sub-pixel form.
        (lambda: ResBlock2d(12), (5, 7)),
        (lambda: UpBlock2d(10, 6), (3, 4)),
        (lambda: DownBlock2d(5, 8), (6, 8)),
    ],
)
def test_fast_blocks_equal_plain_blocks(
    make, size: tuple, winograd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if winograd:
        monkeypatch.setattr(fast, "WINOGRAD_MIN_CHANNELS", 1)
        monkeypatch.setattr(fast, "WINOGRAD_MIN_PIXELS", 1)
    torch.manual_seed(4)
    block = make()
    randomize_batch_norms(block, torch.Generator().manual_seed(4))
    block.eval()
    fast_block = fast.optimize_network(block)
    assert type(fast_block) is not type(block)
    x = torch.randn(2, block.conv1.in_channels if hasattr(block, "conv1") else block.conv.in_channels, *size)
    with torch.no_grad():
        expected = block(x)
        out = fast_block(x)
    assert out.shape == expected.shape
    assert max_diff(out, expected) < 2e-5


def test_sub_pixel_up_block_never_builds_the_upsampled_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond tiny inputs its convolution runs on the low-resolution input with 2x2 kernels."""
    torch.manual_seed(5)
    plain = UpBlock2d(4, 3).eval()
    block = fast.SubPixelUpBlock(plain)
    x = torch.rand(1, 4, 6, 6)
    with torch.no_grad():
        expected = plain(x)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the up-sampled input was built")

    monkeypatch.setattr(F, "interpolate", refuse)
    with torch.no_grad():
        assert max_diff(block(x), expected) < 1e-5
    assert block.sub_pixel is not None and block.sub_pixel.weight.shape == (4 * 3, 4, 2, 2)


def test_anti_alias_as_strided_convolution() -> None:
    torch.manual_seed(6)
    plain = AntiAliasInterpolation2d(3, 0.25)
    quick = fast.FastAntiAlias(plain)
    for size in ((64, 64), (37, 50)):
        x = torch.rand(2, 3, *size)
        assert max_diff(quick(x), plain(x)) < 1e-6


def test_channels_last_inputs_and_weights_give_the_same_result(force_winograd: None) -> None:
    torch.manual_seed(7)
    block = ResBlock2d(8).eval()
    quick = fast.optimize_network(block)
    x = torch.randn(1, 8, 10, 10)
    with torch.no_grad():
        assert max_diff(quick(x.contiguous(memory_format=torch.channels_last)), block(x)) < 2e-5


@pytest.mark.parametrize("occlusion", [True, False])
@torch.inference_mode()
def test_fast_dense_motion_equals_plain_and_flushes_denormals(occlusion: bool) -> None:
    torch.manual_seed(9)
    plain = DenseMotionNetwork(8, 3, 64, num_kp=5, num_channels=3, estimate_occlusion_map=occlusion)
    randomize_batch_norms(plain, torch.Generator().manual_seed(9))
    quick = fast.optimize_network(plain.eval())
    image = torch.rand(1, 3, 32, 32)
    kp_source = {
        "value": torch.rand(1, 5, 2) * 2 - 1,
        "jacobian": torch.eye(2) + 0.1 * torch.randn(1, 5, 2, 2),
    }
    kp_driving = {
        "value": torch.rand(3, 5, 2) * 2 - 1,
        "jacobian": torch.eye(2) + 0.1 * torch.randn(3, 5, 2, 2),
    }
    plain_source = plain.prepare_source(image, kp_source)
    quick_source = quick.prepare_source(image, kp_source)

    expected, out = plain(plain_source, kp_driving), quick(quick_source, kp_driving)
    assert (
        set(out)
        == set(expected)
        == {"sparse_deformed", "mask", "deformation"} | ({"occlusion_map"} if occlusion else set())
    )
    for key in expected:
        assert max_diff(out[key], expected[key]) < 2e-5, key

    def has_tiny(x: torch.Tensor) -> bool:
        return bool(((x != 0) & (x.abs() < fast.TINY)).any())

    assert has_tiny(plain.heatmap_differences(plain_source, kp_driving, 32, 32)), "Gaussian tails below TINY"
    assert not has_tiny(quick.heatmap_differences(quick_source, kp_driving, 32, 32))


# --- whole networks ---------------------------------------------------------------------------------

TINY = {  # the TINY_FOMM_CONFIG of conftest with two bottleneck blocks
    "model_params": {
        "common_params": {"num_kp": 5, "num_channels": 3, "estimate_jacobian": True},
        "kp_detector_params": {
            "temperature": 0.1, "block_expansion": 8, "max_features": 64, "scale_factor": 0.5,
            "num_blocks": 3,
        },
        "generator_params": {
            "block_expansion": 8, "max_features": 64, "num_down_blocks": 2, "num_bottleneck_blocks": 2,
            "estimate_occlusion_map": True,
            "dense_motion_params": {
                "block_expansion": 8, "max_features": 64, "num_blocks": 3, "scale_factor": 0.5,
            },
        },
    },
}  # fmt: skip


def tiny_networks() -> tuple[KPDetector, OcclusionAwareGenerator]:
    cfg = config_from_dict(TINY)
    torch.manual_seed(8)
    kp_detector = KPDetector(**kp_detector_kwargs(cfg))
    generator = OcclusionAwareGenerator(**generator_kwargs(cfg))
    rng = torch.Generator().manual_seed(8)
    with torch.no_grad():
        kp_detector.jacobian.weight.normal_(0, 0.05, generator=rng)
        kp_detector.kp.weight.mul_(20)
        generator.final.weight.mul_(5)
    randomize_batch_norms(kp_detector, rng)
    randomize_batch_norms(generator, rng)
    return kp_detector.eval(), generator.eval()


@torch.inference_mode()
def test_optimized_tiny_networks_equal_plain_ones(force_winograd: None) -> None:
    kp_detector, generator = tiny_networks()
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    fast_kp, fast_gen = fast.optimize_for_inference(kp_detector, generator)
    source = torch.rand(1, 3, 64, 64)
    driving = torch.rand(3, 3, 64, 64)

    kp_source, kp_driving = kp_detector(source), kp_detector(driving)
    expected = generator.decode(generator.encode(source, kp_source), kp_driving, with_deformed=True)
    fast_source, fast_driving = fast_kp(source), fast_kp(driving)
    out = fast_gen.decode(fast_gen.encode(source, fast_source), fast_driving, with_deformed=True)

    for key in ("value", "jacobian"):
        assert max_diff(fast_source[key], kp_source[key]) < KP_TOL
        assert max_diff(fast_driving[key], kp_driving[key]) < KP_TOL
    assert expected["prediction"].std() > 0.01, "a flat prediction would hide differences"
    for key in ("prediction", "deformed", "occlusion_map", "mask"):
        assert max_diff(out[key], expected[key]) < PREDICTION_TOL, key
    # The originals are untouched and still plain.
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())
    assert isinstance(generator.bottleneck[0], ResBlock2d)
    assert any(isinstance(m, WinogradConv2d) for m in fast_gen.modules()), "Winograd was exercised"
    assert not any(p.requires_grad for p in fast_gen.parameters())


@pytest.mark.slow
@torch.inference_mode()
def test_optimized_vox256_matches_plain_with_named_checkpoint(
    named_checkpoint: Path, fomm_reference: Path
) -> None:
    cfg = load_config("vox-256")
    kp_detector = KPDetector(**kp_detector_kwargs(cfg)).eval()
    generator = OcclusionAwareGenerator(**generator_kwargs(cfg)).eval()
    state = read_checkpoint(named_checkpoint)
    load_state_strict(kp_detector, state["kp_detector"], "keypoint detector", named_checkpoint)
    load_state_strict(generator, state["generator"], "generator", named_checkpoint)
    with np.load(fomm_reference / "vox256_parity.npz") as data:
        source = torch.from_numpy(data["inputs/source"])
        driving = torch.from_numpy(data["inputs/driving"])[0, :, :2].permute(1, 0, 2, 3).contiguous()

    fast_kp, fast_gen = fast.optimize_for_inference(kp_detector, generator)
    kp_source, kp_driving = kp_detector(source), kp_detector(driving)
    expected = generator.decode(generator.encode(source, kp_source), kp_driving, with_deformed=False)
    fast_source, fast_driving = fast_kp(source), fast_kp(driving)
    out = fast_gen.decode(fast_gen.encode(source, fast_source), fast_driving, with_deformed=False)

    for key in ("value", "jacobian"):
        assert max_diff(fast_driving[key], kp_driving[key]) < KP_TOL
    assert max_diff(out["prediction"], expected["prediction"]) < PREDICTION_TOL
    assert sum(isinstance(m, WinogradConv2d) for m in fast_gen.modules()) >= 12, "the bottleneck ran Winograd"


# --- precision choice ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "fast_bf16"),
    [({"avx512f", "avx512bw"}, False), ({"avx512f", "avx512_bf16"}, True), ({"amx_bf16", "amx_tile"}, True)],
)
def test_bf16_is_fast_follows_cpu_flags(monkeypatch: pytest.MonkeyPatch, flags: set, fast_bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(fast, "_cpu_flags", lambda: flags)
    fast.bf16_is_fast.cache_clear()
    try:
        assert fast.bf16_is_fast() is fast_bf16
    finally:
        fast.bf16_is_fast.cache_clear()


def test_cpu_flags_are_read_from_proc_cpuinfo() -> None:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    line = next((ln for ln in text.splitlines() if ln.split(":")[0].strip() in ("flags", "Features")), None)
    expected = set(line.split(":", 1)[1].split()) if line else set()
    assert fast._cpu_flags() == expected


@torch.inference_mode()
def test_optimized_networks_run_under_bf16_autocast(force_winograd: None) -> None:
    """Under autocast Winograd steps aside (bf16 would spoil its transforms); results stay close."""
    kp_detector, generator = tiny_networks()
    fast_kp, fast_gen = fast.optimize_for_inference(kp_detector, generator)
    source, driving = torch.rand(1, 3, 64, 64), torch.rand(2, 3, 64, 64)
    expected = generator.decode(generator.encode(source, kp_detector(source)), kp_detector(driving))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast_gen.decode(fast_gen.encode(source, fast_kp(source)), fast_kp(driving))
    assert out["prediction"].shape == expected["prediction"].shape
    assert max_diff(out["prediction"], expected["prediction"]) < 0.05


def test_work_buffers_survive_switching_inference_mode() -> None:
    """Buffers first made under inference_mode must not be reused (and written) outside it."""
    from animatica.fomm.winograd import WinogradConv2d

    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    fast = WinogradConv2d(conv.weight.detach(), conv.bias.detach(), padding=1, tile=4)
    x = torch.randn(1, 8, 12, 12)
    with torch.inference_mode():
        a = fast(x)
    with torch.no_grad():
        b = fast(x)
    assert torch.allclose(a, b)
