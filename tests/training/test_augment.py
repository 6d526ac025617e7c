"""Augmentations: one random draw per sample, applied identically to all its frames."""

import numpy as np
import pytest

from animatica.training.augment import Augmenter
from animatica.training.errors import DatasetError
from animatica.training.synth import render_clip

ALL = {
    "flip_param": {"horizontal_flip": True, "time_flip": True},
    "jitter_param": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.1},
    "rotation_param": {"degrees": 20},
    "resize_param": {"ratio": [0.8, 1.2]},
    "crop_param": {"size": [24, 24]},
}


def test_identical_frames_stay_identical() -> None:
    frame = render_clip(2, "train", 0, size=32, frames=1)[0]
    augment = Augmenter(ALL)
    for seed in range(8):
        a, b = augment([frame, frame.copy()], np.random.default_rng(seed))
        assert a.shape == (24, 24, 3) and a.dtype == np.float32
        assert np.array_equal(a, b)
        assert a.min() >= 0 and a.max() <= 1


def test_flips_follow_the_draw() -> None:
    clip = render_clip(2, "train", 1, size=32, frames=2)
    augment = Augmenter({"flip_param": {"horizontal_flip": True, "time_flip": True}})
    seen = set()
    for seed in range(16):
        a, b = augment(list(clip), np.random.default_rng(seed))
        base = [clip[0], clip[1]]
        for flipped_time in (False, True):
            for mirrored in (False, True):
                order = base[::-1] if flipped_time else base
                expect = [f[:, ::-1] if mirrored else f for f in order]
                if np.allclose(a * 255, expect[0]) and np.allclose(b * 255, expect[1]):
                    seen.add((flipped_time, mirrored))
    assert seen == {(False, False), (False, True), (True, False), (True, True)}


def test_no_parameters_is_identity() -> None:
    clip = render_clip(2, "train", 2, size=16, frames=2)
    a, b = Augmenter(None)(list(clip), np.random.default_rng(0))
    assert np.allclose(a * 255, clip[0]) and np.allclose(b * 255, clip[1])


def test_unknown_section_is_an_error() -> None:
    with pytest.raises(DatasetError, match="flip"):
        Augmenter({"flips": {}})
