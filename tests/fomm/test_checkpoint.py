"""Checkpoint loading: public-format files load strictly; every bad file gets a clear CheckpointError."""

import pickle
import re
from pathlib import Path

import pytest
import torch

from animatica.errors import CheckpointError, ConfigError
from animatica.fomm.checkpoint import (
    SHIPPED_DIR,
    load_state_strict,
    read_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    shipped_names,
)
from animatica.fomm.config import generator_kwargs, kp_detector_kwargs, load_config
from animatica.fomm.generator import OcclusionAwareGenerator
from animatica.fomm.inspect import inspect_checkpoint
from animatica.fomm.keypoint_detector import KPDetector


def tiny_networks(num_kp: int = 4) -> tuple[KPDetector, OcclusionAwareGenerator]:
    common = {"num_kp": num_kp, "num_channels": 3, "estimate_jacobian": True}
    kp = KPDetector(
        block_expansion=8, max_features=32, num_blocks=3, temperature=0.1, scale_factor=0.5, **common
    )
    gen = OcclusionAwareGenerator(
        block_expansion=8, max_features=32, num_down_blocks=2, num_bottleneck_blocks=1,
        estimate_occlusion_map=True,
        dense_motion_params={"block_expansion": 8, "max_features": 32, "num_blocks": 3, "scale_factor": 0.5},
        **common,
    )  # fmt: skip
    return kp, gen


def test_missing_checkpoint_says_where_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"not found.*vox-cpk\.pth\.tar"):
        resolve_checkpoint(tmp_path / "nope.pth.tar")
    with pytest.raises(CheckpointError, match="not found"):
        resolve_checkpoint("no-such-name")


def test_named_checkpoint_found_in_the_folder_given(tmp_path: Path, animatica_home: Path) -> None:
    kp, gen = tiny_networks()
    folder = tmp_path / "named"
    path = folder / "mine.pth.tar"
    save_checkpoint(path, {"kp_detector": kp.state_dict(), "generator": gen.state_dict()})
    assert resolve_checkpoint("mine", checkpoints_dir=folder) == path
    assert resolve_checkpoint("demo", checkpoints_dir=folder).name == "demo.pth.tar"  # shipped names too
    assert inspect_checkpoint("mine", checkpoints_dir=folder)["path"] == str(path)
    assert shipped_names(folder) == ["demo", "mine"]
    # A checkpoint the caller keeps under a shipped name is the one that name means.
    own_demo = folder / "demo.pth"
    save_checkpoint(own_demo, {"kp_detector": kp.state_dict(), "generator": gen.state_dict()})
    assert resolve_checkpoint("demo", checkpoints_dir=folder) == own_demo
    assert resolve_checkpoint("demo").parent == SHIPPED_DIR
    own_demo.unlink()
    # The folder is the caller's argument: the settings' own folder is not looked at.
    save_checkpoint(animatica_home / "checkpoints" / "home.pth.tar", {"kp_detector": {}, "generator": {}})
    with pytest.raises(
        CheckpointError, match=rf"known names: demo, mine\).*copy it into {re.escape(str(folder))}$"
    ):
        resolve_checkpoint("home", checkpoints_dir=folder)
    with pytest.raises(CheckpointError, match=r"known names: demo\). .*pass its path$"):
        resolve_checkpoint("mine")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"this is not a checkpoint at all" * 10, "cannot be read"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pth.tar"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_truncated_checkpoint(tmp_path: Path) -> None:
    kp, gen = tiny_networks()
    path = tmp_path / "full.pth.tar"
    torch.save({"kp_detector": kp.state_dict(), "generator": gen.state_dict()}, path)
    cut = tmp_path / "cut.pth.tar"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        read_checkpoint(cut)


class Payload:
    def __reduce__(self):
        return (print, ("code ran while loading",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth.tar"
    with path.open("wb") as f:
        pickle.dump({"generator": Payload(), "kp_detector": {}}, f)
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_checkpoint(path)


def test_missing_entries_are_named(tmp_path: Path) -> None:
    path = tmp_path / "partial.pth.tar"
    torch.save({"generator": {}}, path)
    with pytest.raises(CheckpointError, match="no kp_detector entry"):
        read_checkpoint(path)


def test_strict_loading_names_missing_unexpected_and_mismatched_keys() -> None:
    kp, _ = tiny_networks(num_kp=4)
    other, _ = tiny_networks(num_kp=5)
    state = other.state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["down.weight"]
    with pytest.raises(CheckpointError) as err:
        load_state_strict(kp, state, "keypoint detector", "x.pth.tar")
    text = str(err.value)
    assert "missing keys: down.weight" in text
    assert "unexpected keys: extra.weight" in text
    assert "kp.weight (5, 11, 7, 7) vs (4, 11, 7, 7)" in text
    assert "--config" in text


def test_data_parallel_prefix_is_accepted() -> None:
    kp, _ = tiny_networks()
    other, _ = tiny_networks()
    load_state_strict(kp, {f"module.{k}": v for k, v in other.state_dict().items()}, "kp", "x")
    assert torch.equal(kp.kp.weight, other.kp.weight)


def test_public_checkpoint_against_wrong_config(named_checkpoint: Path) -> None:
    """The vox weights with mgif's config (one shared jacobian map) fail with the offending key."""
    from animatica.engines.fomm import FommEngine

    with pytest.raises(CheckpointError, match=r"jacobian\.weight \(40, 35, 7, 7\) vs \(4, 35, 7, 7\)"):
        FommEngine.load(named_checkpoint, config="mgif-256", optimize=False)
    with pytest.raises(ConfigError, match=r"(?i)unknown config"):
        FommEngine.load(named_checkpoint, config="vox-512", optimize=False)


def test_inspect_reports_fitting_configs(named_checkpoint: Path) -> None:
    report = inspect_checkpoint(named_checkpoint)
    assert report["num_kp"] == 10
    assert report["parameters"] == {"kp_detector": 14_215_368, "generator": 45_575_391}
    assert "vox-256" in report["fits_builtin_configs"]
    assert "mgif-256" not in report["fits_builtin_configs"]


def test_built_networks_have_reference_parameter_counts() -> None:
    from animatica.fomm.config import discriminator_kwargs
    from animatica.fomm.discriminator import MultiScaleDiscriminator

    cfg = load_config("vox-adv-256")

    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    assert count(KPDetector(**kp_detector_kwargs(cfg))) == 14_215_368
    assert count(OcclusionAwareGenerator(**generator_kwargs(cfg))) == 45_575_391
    vox = load_config("vox-256")
    assert count(MultiScaleDiscriminator(**discriminator_kwargs(vox))) == 2_758_849


def test_a_folder_named_like_a_shipped_checkpoint_does_not_hide_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    assert resolve_checkpoint("demo").name == "demo.pth.tar"
    with pytest.raises(CheckpointError, match="not a file"):
        resolve_checkpoint(tmp_path / "demo")
