"""State-dict shapes of the networks a config builds, and matching checkpoints to built-in configs.

The shape reference is the state dict of the public implementation under vox-256, recorded in
``tests/fomm/reference/vox256_state_shapes.json``; matching it key for key is what lets the
public checkpoints load into networks built from these configs.
"""

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from animatica.fomm import networks
from animatica.fomm.config import (
    builtin_config_path,
    discriminator_kwargs,
    generator_kwargs,
    kp_detector_kwargs,
    load_config,
)
from animatica.fomm.discriminator import MultiScaleDiscriminator
from animatica.fomm.generator import OcclusionAwareGenerator
from animatica.fomm.keypoint_detector import KPDetector
from animatica.fomm.networks import NETWORKS, expected_shapes, match_builtin

SHIPPED_CONFIGS = sorted(builtin_config_path("vox-256").parent.glob("*.yaml"))
BUFFER_SUFFIXES = (
    "running_mean",
    "running_var",
    "num_batches_tracked",
    "down.weight",
    "weight_u",
    "weight_v",
)


@pytest.fixture(scope="module")
def reference(fomm_reference: Path) -> dict[str, Any]:
    return json.loads((fomm_reference / "vox256_state_shapes.json").read_text())


def _network(shapes: dict[str, tuple[int, ...]], network: str) -> dict[str, tuple[int, ...]]:
    prefix = network + "."
    return {key.removeprefix(prefix): shape for key, shape in shapes.items() if key.startswith(prefix)}


def _vox_dict() -> dict[str, Any]:
    return yaml.safe_load(builtin_config_path("vox-256").read_text())


def _write(tmp_path: Path, data: Any, name: str = "user.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("network", NETWORKS)
def test_vox_shapes_equal_the_reference_state_dict(reference: dict[str, Any], network: str) -> None:
    mine = _network(expected_shapes(load_config("vox-256")), network)
    theirs = {key: tuple(shape) for key, shape in reference[network].items()}
    assert mine == theirs
    assert list(mine) == list(theirs)  # same registration order, handy for strict loading messages
    parameters = sum(math.prod(shape) for key, shape in mine.items() if not key.endswith(BUFFER_SUFFIXES))
    assert parameters == reference["param_counts"][network]


def test_mgif_has_one_shared_jacobian_map() -> None:
    kp = _network(expected_shapes(load_config("mgif-256")), "kp_detector")
    assert kp["jacobian.weight"] == (4, 35, 7, 7)
    assert kp["jacobian.bias"] == (4,)
    vox = _network(expected_shapes(load_config("vox-256")), "kp_detector")
    assert vox["jacobian.weight"] == (40, 35, 7, 7)
    assert set(kp) == set(vox)


def test_keypoint_discriminator_without_spectral_norm() -> None:
    disc = _network(expected_shapes(load_config("vox-adv-256")), "discriminator")
    assert disc["discs.1.down_blocks.0.conv.weight"] == (64, 13, 4, 4)  # image + 10 keypoint heatmaps
    assert not any("weight_orig" in key for key in disc)


def test_match_builtin_on_the_reference_checkpoint_shapes(reference: dict[str, Any]) -> None:
    checkpoint = {
        f"{network}.{key}": tuple(shape)
        for network in ("generator", "kp_detector", "discriminator")
        for key, shape in reference[network].items()
    }
    checkpoint["optimizer_generator.state"] = (1,)
    matches = match_builtin(checkpoint)
    assert "vox-256" in matches and "vox-adv-256" in matches
    assert "mgif-256" not in matches


def test_match_builtin_tells_mgif_apart_and_rejects_other_architectures() -> None:
    mgif = expected_shapes(load_config("mgif-256"))
    assert match_builtin(mgif) == ["mgif-256"]
    vox = expected_shapes(load_config("vox-256"))
    wrong = {**vox, "kp_detector.kp.weight": (15, 35, 7, 7)}
    assert match_builtin(wrong) == []
    missing = {key: shape for key, shape in vox.items() if key != "generator.final.bias"}
    assert match_builtin(missing) == []
    assert match_builtin({}) == []


def test_shapes_follow_a_user_architecture(tmp_path: Path) -> None:
    data = _vox_dict()
    model = data["model_params"]
    model["common_params"]["num_kp"] = 15
    model["kp_detector_params"]["scale_factor"] = 0.5
    model["generator_params"]["estimate_occlusion_map"] = False
    model["generator_params"]["dense_motion_params"]["scale_factor"] = 0.2
    model["discriminator_params"]["scales"] = [1, 0.5]
    shapes = expected_shapes(load_config(_write(tmp_path, data)))
    assert shapes["kp_detector.kp.weight"] == (15, 35, 7, 7)
    assert shapes["kp_detector.jacobian.weight"] == (60, 35, 7, 7)
    assert shapes["kp_detector.down.weight"] == (3, 1, 5, 5)  # sigma 0.5 -> 5x5 kernel
    assert shapes["generator.dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight"] == (
        128,
        16 * 4,
        3,
        3,
    )
    assert shapes["generator.dense_motion_network.mask.weight"] == (16, 64 + 64, 7, 7)
    assert not any(".occlusion." in key for key in shapes)
    # sigma = (1/0.2 - 1)/2 = 2 -> 2·round(4 sigma) + 1 = 17 taps
    assert shapes["generator.dense_motion_network.down.weight"] == (3, 1, 17, 17)
    assert "discriminator.discs.0-5.conv.weight_orig" in shapes
    assert match_builtin(shapes) == []


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda path: path.stem)
def test_shapes_equal_a_real_instantiation(path: Path) -> None:
    cfg = load_config(path)
    real = {
        "kp_detector": KPDetector(**kp_detector_kwargs(cfg)),
        "generator": OcclusionAwareGenerator(**generator_kwargs(cfg)),
        "discriminator": MultiScaleDiscriminator(**discriminator_kwargs(cfg)),
    }
    shapes = {
        f"{name}.{key}": tuple(tensor.shape)
        for name in NETWORKS
        for key, tensor in real[name].state_dict().items()
    }
    assert expected_shapes(cfg) == shapes
    assert list(expected_shapes(cfg)) == list(shapes)


def test_shipped_configs_are_all_checked() -> None:
    assert {path.stem for path in SHIPPED_CONFIGS} >= {"vox-256", "mgif-256", "demo-64"}


def test_shapes_come_from_the_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A layer added to a network shows in the shapes, with no second description to update."""
    original = KPDetector.__init__

    def with_extra_buffer(self: KPDetector, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.register_buffer("extra", torch.zeros(7, 2))

    monkeypatch.setattr(KPDetector, "__init__", with_extra_buffer)
    assert expected_shapes(load_config("vox-256"))["kp_detector.extra"] == (7, 2)


def test_shapes_allocate_nothing() -> None:
    built = networks.build_networks(load_config("vox-256"), device="meta")
    assert all(tensor.is_meta for net in built.values() for tensor in net.state_dict().values())
    state = torch.random.get_rng_state()
    expected_shapes(load_config("vox-256"))
    assert torch.equal(torch.random.get_rng_state(), state), "building the shapes drew random numbers"


def test_scale_of_one_third_builds_a_nine_tap_kernel(tmp_path: Path) -> None:
    data = _vox_dict()
    data["model_params"]["generator_params"]["dense_motion_params"]["scale_factor"] = 1 / 3
    shapes = expected_shapes(load_config(_write(tmp_path, data)))
    assert shapes["generator.dense_motion_network.down.weight"] == (3, 1, 9, 9)  # sigma 1
