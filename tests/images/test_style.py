"""Gatys style transfer on random-weight VGG16/VGG19 files saved in torchvision's format.

Random weights make the pictures meaningless, but the optimisation is the real one: the loss it
minimises must fall, the content term alone must pull a picture towards the content picture, and
the style term must move it away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.vgg_weights import torchvision_vgg_state

from animatica.errors import AnimaticaError, CheckpointError
from animatica.images.errors import ImageRequestError
from animatica.images.style import transfer_style

SIDE = 32  # the smallest the five style layers allow, to keep each VGG pass cheap


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("vgg")
    paths = {}
    for arch in ("vgg16", "vgg19"):
        paths[arch] = folder / f"{arch}-random.pth"
        torch.save(torchvision_vgg_state(arch, seed=0), paths[arch])
    return paths


def _content() -> np.ndarray:
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    return np.stack([xx * 8, yy * 8, 255 - (xx + yy) * 4], axis=-1).clip(0, 255).astype(np.uint8)


def _style() -> np.ndarray:
    stripes = (np.arange(SIDE * 2) // 3 % 2 * 255).astype(np.uint8)
    picture = np.zeros((SIDE * 2, SIDE * 2, 3), np.uint8)
    picture[..., 0] = stripes[None, :]
    picture[..., 2] = stripes[:, None]
    return picture


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_loss_falls_and_the_picture_takes_on_the_style(weights: dict[str, Path], arch: str) -> None:
    calls: list[tuple[int, int]] = []
    result = transfer_style(
        _content(), _style(), weights[arch], steps=4, progress=lambda s, n: calls.append((s, n))
    )
    assert result.arch == arch
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(result.losses) == 4
    assert result.losses[-1] < 0.8 * result.losses[0]
    out = np.asarray(result.image)
    assert out.shape == (SIDE, SIDE, 3) and out.dtype == np.uint8
    assert _mean_distance(out, _content()) > 1.0  # the style term moved it off the content picture


def test_style_weight_zero_reproduces_the_content(weights: dict[str, Path]) -> None:
    result = transfer_style(_content(), _style(), weights["vgg19"], steps=2, style_weight=0)
    assert int(np.abs(np.asarray(result.image).astype(int) - _content()).max()) <= 1


def test_content_term_alone_pulls_noise_towards_the_content(weights: dict[str, Path]) -> None:
    start = transfer_style(
        _content(), _style(), weights["vgg16"], steps=1, style_weight=0, init="noise", seed=3
    )
    again = transfer_style(
        _content(), _style(), weights["vgg16"], steps=1, style_weight=0, init="noise", seed=3
    )
    other = transfer_style(
        _content(), _style(), weights["vgg16"], steps=1, style_weight=0, init="noise", seed=4
    )
    assert np.array_equal(np.asarray(start.image), np.asarray(again.image))
    assert not np.array_equal(np.asarray(start.image), np.asarray(other.image))
    longer = transfer_style(
        _content(), _style(), weights["vgg16"], steps=12, style_weight=0, init="noise", seed=3
    )
    assert longer.losses[-1] < 0.3 * longer.losses[0]
    # relu4_2 keeps layout, not exact colours, so the pull is clear but partial.
    assert _mean_distance(np.asarray(longer.image), _content()) < 0.9 * _mean_distance(
        np.asarray(start.image), _content()
    )


def test_working_size_is_limited_and_aspect_kept(weights: dict[str, Path]) -> None:
    wide = np.repeat(np.repeat(_content(), 4, axis=1), 2, axis=0)  # 128 wide, 64 high
    result = transfer_style(wide, _style(), weights["vgg16"], steps=1, max_size=64, style_weight=0)
    assert result.image.size == (64, 32)


def test_wrong_weight_files_give_clear_errors(tmp_path: Path, weights: dict[str, Path]) -> None:
    content, style = _content(), _style()
    with pytest.raises(CheckpointError, match="do not exist"):
        transfer_style(content, style, tmp_path / "missing.pth", steps=1)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        transfer_style(content, style, tmp_path / "junk.pth", steps=1)
    state = torchvision_vgg_state("vgg19", seed=0)
    state["features.1.weight"] = torch.ones(64)  # a batch-norm layer where torchvision's plain VGG has a ReLU
    torch.save(state, tmp_path / "bn.pth")
    with pytest.raises(CheckpointError, match="neither a torchvision VGG16 nor VGG19"):
        transfer_style(content, style, tmp_path / "bn.pth", steps=1)
    for arch, last in (("vgg16", 24), ("vgg19", 28)):  # files cut after conv5_1 still load
        state = torchvision_vgg_state(arch, seed=0)
        torch.save(
            {k: v for k, v in state.items() if k.startswith("features.") and int(k.split(".")[1]) <= last},
            tmp_path / "cut.pth",
        )
        assert transfer_style(content, style, tmp_path / "cut.pth", steps=1).arch == arch
    state = torchvision_vgg_state("vgg19", seed=0)
    del state["features.19.weight"]
    torch.save(state, tmp_path / "holed.pth")
    with pytest.raises(
        CheckpointError, match=r"not a torchvision VGG19 state dict \(missing features\.19\.weight\)"
    ):
        transfer_style(content, style, tmp_path / "holed.pth", steps=1)
    state = torchvision_vgg_state("vgg16", seed=0)
    state["features.24.weight"] = torch.zeros(512, 256, 3, 3)  # conv5_1, which style transfer uses
    torch.save(state, tmp_path / "misshaped.pth")
    with pytest.raises(
        CheckpointError, match=r"not a torchvision VGG16 state dict \(mis-shaped features\.24\.weight\)"
    ):
        transfer_style(content, style, tmp_path / "misshaped.pth", steps=1)


def test_bad_options_are_refused_before_any_work(weights: dict[str, Path]) -> None:
    content, style = _content(), _style()
    for kwargs, message in (
        ({"steps": 0}, "steps must be"),
        ({"style_weight": -1.0}, "not negative"),
        ({"content_weight": 0.0, "style_weight": 0.0}, "cannot both be 0"),
        ({"max_size": 8}, "size must be"),
        ({"init": "zeros"}, "init must be"),
    ):
        with pytest.raises(ImageRequestError, match=message):
            transfer_style(content, style, weights["vgg16"], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ImageRequestError, match="at least 32 pixels"):
        transfer_style(content[:16], style, weights["vgg16"], steps=1)
    with pytest.raises(AnimaticaError, match="8-bit RGB"):
        transfer_style(content[..., 0], style, weights["vgg16"], steps=1)
