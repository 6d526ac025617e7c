"""Shared fixtures: a tiny FOMM training config and a small procedural dataset at 32x32."""

from pathlib import Path

import pytest

from animatica.fomm.config import FommConfig, config_from_dict
from animatica.training.synth import synthesize

TINY = {
    "dataset_params": {"frame_shape": [32, 32, 3]},
    "model_params": {
        "common_params": {"num_kp": 4, "num_channels": 3, "estimate_jacobian": True},
        "kp_detector_params": {"temperature": 0.1, "block_expansion": 8, "max_features": 32, "num_blocks": 3},
        "generator_params": {
            "block_expansion": 8,
            "max_features": 32,
            "num_down_blocks": 2,
            "num_bottleneck_blocks": 1,
            "estimate_occlusion_map": True,
            "dense_motion_params": {"block_expansion": 8, "max_features": 32, "num_blocks": 3},
        },
        "discriminator_params": {"scales": [1], "block_expansion": 8, "max_features": 32, "num_blocks": 3},
    },
    "train_params": {
        "num_epochs": 100,
        "num_repeats": 2,
        "epoch_milestones": [3],
        "lr_generator": 1.0e-3,
        "lr_discriminator": 1.0e-3,
        "lr_kp_detector": 1.0e-3,
        "batch_size": 4,
        "scales": [1, 0.5],
        "checkpoint_freq": 10,
        "transform_params": {"sigma_affine": 0.05, "sigma_tps": 0.005, "points_tps": 3},
        "loss_weights": {
            "generator_gan": 0,
            "discriminator_gan": 0,
            "feature_matching": [],
            "perceptual": [10, 10, 10, 10, 10],
            "equivariance_value": 10,
            "equivariance_jacobian": 10,
        },
    },
}


def tiny_config(train_extra: dict | None = None, **loss_weights: object) -> FommConfig:
    data = {**TINY, "train_params": {**TINY["train_params"], **(train_extra or {})}}
    data["train_params"]["loss_weights"] = {**TINY["train_params"]["loss_weights"], **loss_weights}
    return config_from_dict(data)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six training and two test clips of eight 32x32 frames."""
    return synthesize(
        tmp_path_factory.mktemp("synth") / "data", videos=6, seed=7, size=32, frames=8, test_videos=2
    )
