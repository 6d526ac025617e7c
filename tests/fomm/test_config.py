"""FOMM configs: the built-in files, YAML loading and validation, and the networks' arguments."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from animatica.errors import ConfigError
from animatica.fomm.config import (
    BUILTIN_CONFIGS,
    FommConfig,
    builtin_config_path,
    config_from_dict,
    config_to_dict,
    discriminator_kwargs,
    frame_size,
    generator_kwargs,
    kp_detector_kwargs,
    load_config,
)
from animatica.fomm.networks import expected_shapes


def _vox_dict() -> dict[str, Any]:
    return yaml.safe_load(builtin_config_path("vox-256").read_text())


def _write(tmp_path: Path, data: Any, name: str = "user.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _load_error(tmp_path: Path, data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, data))
    message = str(info.value)
    assert "\n" not in message
    return message


# --- built-in configs ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_CONFIGS)
def test_builtin_loads_with_the_shared_architecture(name: str) -> None:
    path = builtin_config_path(name)
    assert path.is_file() and path.name == f"{name}.yaml"
    cfg = load_config(name)
    assert frame_size(cfg) == (256, 256)
    model = cfg.model_params
    assert (model.common_params.num_kp, model.common_params.num_channels) == (10, 3)
    assert model.common_params.estimate_jacobian is True
    assert model.kp_detector_params.scale_factor == 0.25
    assert model.generator_params.estimate_occlusion_map is True
    assert model.generator_params.dense_motion_params is not None
    assert cfg.train_params is not None
    assert cfg.animate_params.normalization_params.use_relative_movement is True
    # the file carries all six sections of the public format
    raw = yaml.safe_load(path.read_text())
    assert set(raw) == {
        "dataset_params",
        "model_params",
        "train_params",
        "reconstruction_params",
        "animate_params",
        "visualizer_params",
    }


@pytest.mark.parametrize(
    ("name", "sn", "use_kp", "single_jacobian", "generator_gan", "lr_kp_detector", "batch_size"),
    [
        ("vox-256", True, False, False, 0, 2.0e-4, 40),
        ("vox-adv-256", False, True, False, 1, 2.0e-4, 36),
        ("taichi-256", False, False, False, 0, 2.0e-4, 30),
        ("taichi-adv-256", False, True, False, 1, 0, 27),
        ("bair-256", True, False, False, 1, 2.0e-4, 36),
        ("fashion-256", False, False, False, 1, 2.0e-4, 27),
        ("mgif-256", True, False, True, 1, 2.0e-4, 36),
        ("nemo-256", True, False, False, 1, 2.0e-4, 36),
    ],
)
def test_builtin_values_that_differ_between_configs(
    name: str,
    sn: bool,
    use_kp: bool,
    single_jacobian: bool,
    generator_gan: float,
    lr_kp_detector: float,
    batch_size: int,
) -> None:
    cfg = load_config(name)
    disc = cfg.model_params.discriminator_params
    assert (disc.sn, disc.use_kp) == (sn, use_kp)
    assert cfg.model_params.kp_detector_params.single_jacobian_map is single_jacobian
    assert cfg.train_params is not None
    assert cfg.train_params.loss_weights.generator_gan == generator_gan
    assert cfg.train_params.lr_kp_detector == lr_kp_detector
    assert cfg.train_params.batch_size == batch_size


# --- user files, kwargs and round trip -------------------------------------------------------------


def test_user_yaml_path_as_str_and_path(tmp_path: Path) -> None:
    data = _vox_dict()
    data["model_params"]["common_params"]["num_kp"] = 12
    data["dataset_params"]["frame_shape"] = [384, 512, 3]
    data["my_notes"] = {"author": "someone"}
    data["train_params"]["custom_schedule"] = "cosine"
    path = _write(tmp_path, data, "custom.yml")
    for given in (path, str(path)):
        cfg = load_config(given)
        assert cfg.model_params.common_params.num_kp == 12
        assert frame_size(cfg) == (384, 512)
        dumped = config_to_dict(cfg)
        assert dumped["my_notes"] == {"author": "someone"}
        assert dumped["train_params"]["custom_schedule"] == "cosine"
        assert dumped["dataset_params"]["root_dir"] == "data/vox-png"


def test_minimal_user_yaml_gets_reference_defaults(tmp_path: Path) -> None:
    data = {
        "model_params": {
            "common_params": {"num_kp": 10},
            "kp_detector_params": {
                "temperature": 0.1,
                "block_expansion": 32,
                "max_features": 1024,
                "num_blocks": 5,
            },
            "generator_params": {
                "block_expansion": 64,
                "max_features": 512,
                "num_down_blocks": 2,
                "num_bottleneck_blocks": 6,
            },
        }
    }
    cfg = load_config(_write(tmp_path, data))
    assert frame_size(cfg) == (256, 256)
    assert cfg.train_params is None
    assert cfg.model_params.common_params.estimate_jacobian is False
    assert cfg.model_params.generator_params.dense_motion_params is None
    shapes = expected_shapes(cfg)
    assert "kp_detector.jacobian.weight" not in shapes
    assert "kp_detector.down.weight" not in shapes  # scale_factor 1: no anti-aliasing kernel
    assert not any(key.startswith("generator.dense_motion_network") for key in shapes)
    assert shapes["discriminator.discs.1.down_blocks.0.conv.weight"] == (128, 3, 4, 4)


def test_network_kwargs_use_the_reference_parameter_names() -> None:
    cfg = load_config("vox-256")
    common = {"num_kp", "num_channels", "estimate_jacobian"}
    kp = kp_detector_kwargs(cfg)
    assert set(kp) == common | {
        "temperature",
        "block_expansion",
        "max_features",
        "num_blocks",
        "scale_factor",
        "single_jacobian_map",
        "pad",
    }
    assert (kp["num_kp"], kp["temperature"], kp["scale_factor"]) == (10, 0.1, 0.25)
    gen = generator_kwargs(cfg)
    assert set(gen) == common | {
        "block_expansion",
        "max_features",
        "num_down_blocks",
        "num_bottleneck_blocks",
        "estimate_occlusion_map",
        "dense_motion_params",
    }
    assert gen["block_expansion"] == 64  # the generator's own value, not the detector's
    assert gen["dense_motion_params"] == {
        "block_expansion": 64,
        "max_features": 1024,
        "num_blocks": 5,
        "scale_factor": 0.25,
        "kp_variance": 0.01,
    }
    disc = discriminator_kwargs(cfg)
    assert set(disc) == common | {
        "scales",
        "block_expansion",
        "max_features",
        "num_blocks",
        "sn",
        "use_kp",
        "kp_variance",
    }
    assert (disc["scales"], disc["sn"], disc["num_kp"]) == ([1], True, 10)


@pytest.mark.parametrize("name", BUILTIN_CONFIGS)
def test_round_trip_through_yaml(name: str) -> None:
    cfg = load_config(name)
    text = yaml.safe_dump(config_to_dict(cfg))
    back = config_from_dict(yaml.safe_load(text))
    assert isinstance(back, FommConfig)
    assert back == cfg
    assert expected_shapes(back) == expected_shapes(cfg)
    raw = yaml.safe_load(builtin_config_path(name).read_text())
    assert config_to_dict(cfg)["dataset_params"] == raw["dataset_params"]


def test_round_trip_keeps_integer_scales_as_module_names() -> None:
    back = config_from_dict(yaml.safe_load(yaml.safe_dump(config_to_dict(load_config("vox-256")))))
    assert "discriminator.discs.1.conv.weight_orig" in expected_shapes(back)


# --- errors ----------------------------------------------------------------------------------------


def test_unknown_name_lists_the_builtins() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("vox-1024")
    assert "vox-1024" in str(info.value)
    assert all(name in str(info.value) for name in BUILTIN_CONFIGS)
    with pytest.raises(ConfigError, match="taichi-256"):
        builtin_config_path("taichi")


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(ConfigError, match="built-in config 'vox-256'"):
        load_config(tmp_path / "config" / "vox-256.yaml")
    with pytest.raises(ConfigError, match="not a file"):
        load_config(tmp_path)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    text = "model_params:\n  common_params:\n    num_kp: [10\n  kp_detector_params: {}\n"
    message = _load_error(tmp_path, text)
    assert "not valid YAML" in message
    assert "line 4" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is empty"),
        ("- 1\n- 2\n", "must be a mapping"),
        ("dataset_params:\n  frame_shape: [256, 256, 3]\n", "no model_params"),
        ("model_params: 3\n", "'model_params' must be a mapping of keys, not int"),
    ],
)
def test_files_that_are_not_configs(tmp_path: Path, content: str, expected: str) -> None:
    assert expected in _load_error(tmp_path, content)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00model")
    with pytest.raises(ConfigError, match="Cannot read config"):
        load_config(path)


def _broken(section: str, key: str, value: Any) -> dict[str, Any]:
    data = _vox_dict()
    target = data["model_params"]
    for part in section.split("."):
        target = target[part]
    target[key] = value
    return data


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        (
            "kp_detector_params",
            "tempreature",
            0.1,
            "unknown key 'model_params.kp_detector_params.tempreature'",
        ),
        (
            "generator_params.dense_motion_params",
            "estimate_occlusion_map",
            True,
            "unknown key 'model_params.generator_params.dense_motion_params.estimate_occlusion_map'",
        ),
        ("common_params", "num_kp", "ten", "'model_params.common_params.num_kp' is 'ten'"),
        ("common_params", "num_kp", 10.5, "'model_params.common_params.num_kp' is 10.5"),
        ("common_params", "estimate_jacobian", "yes", "'model_params.common_params.estimate_jacobian'"),
        ("common_params", "num_kp", 0, "greater than or equal to 1"),
        ("kp_detector_params", "temperature", 0, "'model_params.kp_detector_params.temperature' is 0"),
        ("kp_detector_params", "scale_factor", 0, "(0, 1]"),
        ("kp_detector_params", "scale_factor", 1.5, "'model_params.kp_detector_params.scale_factor' is 1.5"),
        ("generator_params.dense_motion_params", "scale_factor", -0.25, "(0, 1]"),
        (
            "generator_params.dense_motion_params",
            "scale_factor",
            0.3,
            "'model_params.generator_params.dense_motion_params.scale_factor' is 0.3: must be 1/N",
        ),
        ("discriminator_params", "scales", [1, 0.4], "'model_params.discriminator_params.scales.1' is 0.4"),
        ("discriminator_params", "scales", [1, 2], "'model_params.discriminator_params.scales.1' is 2"),
        ("discriminator_params", "kp_variance", 0.0, "greater than 0"),
    ],
)
def test_invalid_model_params(tmp_path: Path, section: str, key: str, value: Any, expected: str) -> None:
    message = _load_error(tmp_path, _broken(section, key, value))
    assert expected in message
    assert message.startswith("Invalid config ")


def test_missing_model_key_and_several_problems(tmp_path: Path) -> None:
    data = _vox_dict()
    del data["model_params"]["common_params"]["num_kp"]
    assert "missing key 'model_params.common_params.num_kp'" in _load_error(tmp_path, data)
    data["model_params"]["kp_detector_params"].update(a=1, b=2, c=3, d=4)
    assert "and 2 more" in _load_error(tmp_path, data)


def test_invalid_sections_outside_the_model(tmp_path: Path) -> None:
    data = _vox_dict()
    data["dataset_params"]["frame_shape"] = [0, 256, 3]
    assert "dataset_params.frame_shape" in _load_error(tmp_path, data)
    data = _vox_dict()
    data["train_params"]["batch_size"] = 0
    assert "train_params.batch_size" in _load_error(tmp_path, data)
    data = _vox_dict()
    data["animate_params"]["normalization_params"]["relative"] = True
    assert "unknown key 'animate_params.normalization_params.relative'" in _load_error(tmp_path, data)


def test_config_from_dict_reports_its_source() -> None:
    with pytest.raises(ConfigError, match=r"checkpoint x\.pth"):
        config_from_dict({"model_params": {}}, source="checkpoint x.pth")


def test_own_training_config_loads_by_name() -> None:
    from animatica.fomm.config import OWN_CONFIGS

    assert "demo-64" in OWN_CONFIGS
    assert frame_size(load_config("demo-64")) == (64, 64)
