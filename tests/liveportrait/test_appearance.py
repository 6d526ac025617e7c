"""Appearance feature extractor: public key layout, and the reference's volume on name-derived weights."""

import numpy as np
import torch
from tests.liveportrait.named_weights import load_shapes

from animatica.liveportrait.appearance import AppearanceFeatureExtractor


def test_state_dict_is_the_public_layout() -> None:
    public = load_shapes()["appearance_feature_extractor"]
    ours = {key: list(value.shape) for key, value in AppearanceFeatureExtractor().state_dict().items()}
    assert list(ours.items()) == list(public.items())  # same keys, shapes and order


def test_feature_volume_matches_reference(named_lp_networks, lp_parity: dict[str, np.ndarray]) -> None:
    source = torch.from_numpy(lp_parity["inputs/source"])
    with torch.no_grad():
        volume = named_lp_networks.appearance(source)
    assert volume.shape == (1, 32, 16, 64, 64)
    expected = lp_parity["source/feature_3d_sub"]
    sampled = volume[:, :, ::4, ::4, ::4].numpy()
    assert float(np.abs(expected).max()) > 0.5  # a volume with content, not all near zero
    np.testing.assert_allclose(sampled, expected, rtol=0, atol=1e-4)
