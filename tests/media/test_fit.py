from __future__ import annotations

import numpy as np
import pytest

from animatica.media.fit import fit_frame


def _bands(height: int, width: int, side: int) -> np.ndarray:
    """Green centre with red bands of ``side`` pixels left and right."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:, :, 1] = 255
    frame[:, :side] = (255, 0, 0)
    frame[:, width - side :] = (255, 0, 0)
    return frame


def test_crop_keeps_the_centre() -> None:
    out = fit_frame(_bands(100, 200, 50), (64, 64), "crop")
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    # The centred 100x100 square is all green; the red bands are cut off.
    assert out[:, :, 0].max() < 10 and out[:, :, 1].min() > 245


def test_crop_of_a_tall_frame() -> None:
    frame = np.zeros((300, 100, 3), np.uint8)
    frame[100:200] = 200
    out = fit_frame(frame, (50, 50), "crop")
    assert out.shape == (50, 50, 3)
    assert out[5:-5].min() > 190


def test_pad_letterboxes_with_black() -> None:
    frame = np.full((50, 200, 3), 255, np.uint8)
    out = fit_frame(frame, (100, 100), "pad")
    assert out.shape == (100, 100, 3)
    # Scaled to 100x25, centred vertically: black bars above and below.
    assert out[:36].max() == 0 and out[-36:].max() == 0
    assert out[40:60].min() > 245


def test_stretch_keeps_everything() -> None:
    out = fit_frame(_bands(100, 200, 50), (64, 64), "stretch")
    assert out.shape == (64, 64, 3)
    assert out[:, :10, 0].min() > 245 and out[:, -10:, 0].min() > 245  # both bands survive
    assert out[:, 28:36, 1].min() > 245


def test_non_square_target_is_height_width() -> None:
    out = fit_frame(np.zeros((720, 1280, 3), np.uint8), (96, 128))
    assert out.shape == (96, 128, 3)


def test_same_size_is_returned_untouched() -> None:
    frame = np.zeros((32, 32, 3), np.uint8)
    assert fit_frame(frame, (32, 32)) is frame


def test_downscaling_is_antialiased() -> None:
    # One-pixel black/white stripes: a proper low-pass resize turns them into flat grey,
    # point sampling would keep stark stripes or moiré.
    stripes = np.zeros((720, 720, 3), np.uint8)
    stripes[:, ::2] = 255
    out = fit_frame(stripes, (256, 256)).astype(float)
    assert abs(out.mean() - 127.5) < 3
    assert out[8:-8, 8:-8].std() < 12


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="uint8"):
        fit_frame(np.zeros((4, 4, 3), np.float32), (2, 2))
    with pytest.raises(ValueError, match="fit mode"):
        fit_frame(np.zeros((4, 4, 3), np.uint8), (2, 2), "zoom")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        fit_frame(np.zeros((4, 4, 3), np.uint8), (0, 2))


def test_fit_within_keeps_the_aspect_and_never_enlarges() -> None:
    from animatica.media.fit import fit_within

    landscape = np.zeros((3000, 4000, 3), np.uint8)
    assert fit_within(landscape, 1280).shape == (960, 1280, 3)
    assert fit_within(np.zeros((4000, 3000, 3), np.uint8), 1280).shape == (1280, 960, 3)
    small = np.zeros((20, 30, 3), np.uint8)
    assert fit_within(small, 1280) is small
    assert fit_within(np.zeros((1, 5000, 3), np.uint8), 100).shape == (1, 100, 3)
    with pytest.raises(ValueError, match="positive"):
        fit_within(small, 0)
