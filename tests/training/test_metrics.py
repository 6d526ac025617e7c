"""Metrics on known inputs."""

import numpy as np
import pytest
import torch

from animatica.fomm.keypoint_detector import KPDetector
from animatica.training import metrics


def test_l1_sum_on_known_frames() -> None:
    real = np.zeros((2, 4, 4, 3), np.uint8)
    generated = real.copy()
    generated[0] = 255  # frame 0 entirely wrong (1.0), frame 1 exact (0.0)
    assert metrics.l1_sum(generated, real) == pytest.approx(1.0)
    generated[1, :2] = 51  # half of frame 1 off by 0.2
    assert metrics.l1_sum(generated, real) == pytest.approx(1.1)
    with pytest.raises(ValueError):
        metrics.l1_sum(generated[:1], real)


def test_keypoint_distances_in_pixels() -> None:
    a = np.zeros((1, 2, 2))
    b = a.copy()
    b[0, 0, 0] = 2 / 31  # one pixel right on a 32-pixel-wide frame
    b[0, 1] = [6 / 31, 8 / 15]  # 3 px right, 4 px down on 32x16: 5 px
    assert metrics.keypoint_distances(a, b, height=16, width=32) == pytest.approx(np.array([[1.0, 5.0]]))


def test_missing_count() -> None:
    real = np.array([[0.01, 0.05, 0.5]])
    generated = np.array([[0.5, 0.05, 0.01]])
    # Keypoint 0 found in real but not generated; keypoint 2 never counted (missing in real).
    assert metrics.missing_count(real, generated) == (1, 2)


def test_detect_reports_spread_of_a_flat_heatmap() -> None:
    detector = KPDetector(
        block_expansion=4, num_kp=2, num_channels=3, max_features=8, num_blocks=2, temperature=0.1
    )
    torch.nn.init.zeros_(detector.kp.weight)
    torch.nn.init.zeros_(detector.kp.bias)
    detector.eval()
    values, spread = metrics.detect(detector, torch.rand(1, 3, 16, 16))
    # A uniform heatmap over the 10x10 map: the centre, and a spread of sqrt(2 var) / 2 of the side.
    assert np.allclose(values, 0, atol=1e-6)
    grid = np.linspace(-1, 1, 10)
    assert spread == pytest.approx(np.full((1, 2), np.sqrt(2 * grid.var()) / 2), rel=1e-5)
    assert (spread > metrics.DETECTED_SPREAD).all()


def test_detect_finds_a_peaked_keypoint() -> None:
    detector = KPDetector(
        block_expansion=4, num_kp=1, num_channels=3, max_features=8, num_blocks=2, temperature=0.01
    )
    torch.nn.init.zeros_(detector.kp.weight)
    detector.eval()
    with torch.no_grad():
        # Logits follow the input's red channel through the hourglass's pass-through channels (the last
        # in_features channels of its output are the input itself); a bright pixel becomes the peak.
        detector.kp.weight[0, -3, 3, 3] = 10.0
        detector.kp.bias.zero_()
    image = torch.zeros(1, 3, 16, 16)
    image[0, 0, 7, 12] = 1.0  # row 7, column 12 of the input = row 4, column 9 of the 10x10 map
    values, spread = metrics.detect(detector, image)
    grid = np.linspace(-1, 1, 10)
    assert values[0, 0] == pytest.approx([grid[9], grid[4]], abs=1e-3)
    assert spread[0, 0] < 0.01
