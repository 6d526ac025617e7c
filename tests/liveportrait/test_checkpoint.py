"""LivePortrait weights: the public folder loads strictly at either level; every bad folder or file
gets one clear WeightsError naming what is wrong and where."""

import pickle
import re
from pathlib import Path

import pytest
import torch
from tests.liveportrait.named_weights import load_shapes

from animatica.errors import AnimaticaError
from animatica.liveportrait.checkpoint import load_networks, random_networks
from animatica.liveportrait.layout import (
    BASE_FILES,
    RETARGETING_ENTRIES,
    RETARGETING_FILE,
    WEIGHT_FILES,
    WeightsError,
    find_weights_dir,
)

APPEARANCE = BASE_FILES["appearance"]


class Gadget:
    """Not a tensor: a file holding one can only be read by running pickled code."""


def linked_copy(named: Path, folder: Path) -> Path:
    """A weight folder whose files link to ``named``'s, so that one of them can be replaced cheaply."""
    for name in WEIGHT_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(named / name)
    return folder


def replace(folder: Path, name: str, content: object) -> Path:
    path = folder / name
    path.unlink()
    torch.save(content, path)
    return path


def test_weights_error_is_a_user_error() -> None:
    assert issubclass(WeightsError, AnimaticaError)


def test_find_weights_dir_accepts_both_levels(named_lp_dir: Path) -> None:
    assert find_weights_dir(named_lp_dir) == named_lp_dir
    assert find_weights_dir(named_lp_dir.parent) == named_lp_dir  # e.g. pretrained_weights/
    assert find_weights_dir(str(named_lp_dir)) == named_lp_dir


def test_empty_folder_names_every_file_and_where_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as error:
        find_weights_dir(tmp_path)
    message = str(error.value)
    for name in WEIGHT_FILES:
        assert str(tmp_path / name) in message
    for hint in ("github.com/KwaiVGI/LivePortrait", "huggingface.co/KwaiVGI/LivePortrait", "--checkpoint"):
        assert hint in message
    assert "$ANIMATICA_HOME/checkpoints/liveportrait" in message
    with pytest.raises(WeightsError, match=r"not found.*github\.com/KwaiVGI/LivePortrait"):
        find_weights_dir(tmp_path / "nowhere")
    (tmp_path / "file.pth").write_bytes(b"x")
    with pytest.raises(WeightsError, match="not a folder"):
        find_weights_dir(tmp_path / "file.pth")


def test_partial_folder_names_only_the_missing_files(tmp_path: Path) -> None:
    top = tmp_path / "pretrained_weights"
    folder = top / "liveportrait"
    present = [BASE_FILES["appearance"], BASE_FILES["motion"]]
    for name in present:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    for given in (folder, top):  # reported against the level that holds the layout
        with pytest.raises(WeightsError) as error:
            load_networks(given)
        message = str(error.value)
        missing = [name for name in WEIGHT_FILES if name not in present]
        assert all(str(folder / name) in message for name in missing)
        assert not any(name in message for name in present)


def test_loaded_networks_hold_the_files_weights(named_lp_networks, named_lp_dir: Path) -> None:
    retargeting = torch.load(named_lp_dir / RETARGETING_FILE, weights_only=True)
    for part, entry in RETARGETING_ENTRIES.items():
        module = getattr(named_lp_networks, part)
        assert not module.training
        state = module.state_dict()
        assert [f"module.{key}" for key in state] == list(retargeting[entry])
        for key, value in state.items():
            assert torch.equal(value, retargeting[entry][f"module.{key}"])
    appearance = torch.load(named_lp_dir / APPEARANCE, weights_only=True)
    assert torch.equal(named_lp_networks.appearance.second.weight, appearance["second.weight"])
    assert all(not m.training for m in named_lp_networks.parts().values())


def broken_states(named: Path) -> list[tuple[str, dict, str]]:
    state = torch.load(named / APPEARANCE, weights_only=True)
    without = {key: value for key, value in state.items() if key != "second.bias"}
    extra = {**state, "third.weight": torch.zeros(3)}
    reshaped = {**state, "second.weight": torch.zeros(512, 256, 3, 3)}
    not_tensor = {**state, "second.bias": 1.5}
    return [
        ("missing", without, r"missing keys: second\.bias"),
        ("unexpected", extra, r"unexpected keys: third\.weight"),
        ("shape", reshaped, r"shape mismatches .*second\.weight \(512, 256, 3, 3\) vs \(512, 256, 1, 1\)"),
        ("not_tensor", not_tensor, r"not tensors: second\.bias"),
    ]


def test_strict_loading_names_keys_and_file(named_lp_dir: Path, tmp_path: Path) -> None:
    for case, state, pattern in broken_states(named_lp_dir):
        folder = linked_copy(named_lp_dir, tmp_path / case)
        path = replace(folder, APPEARANCE, state)
        with pytest.raises(WeightsError, match=pattern) as error:
            load_networks(folder)
        assert str(path) in str(error.value)
        assert "appearance network" in str(error.value)


def test_retargeting_file_problems(named_lp_dir: Path, tmp_path: Path) -> None:
    retargeting = torch.load(named_lp_dir / RETARGETING_FILE, weights_only=True)
    folder = linked_copy(named_lp_dir, tmp_path / "no_eye")
    replace(folder, RETARGETING_FILE, {k: v for k, v in retargeting.items() if k != "retarget_eye"})
    with pytest.raises(WeightsError, match=r"stitching_retargeting_module\.pth has no retarget_eye entry"):
        load_networks(folder)

    lip = dict(retargeting["retarget_mouth"])
    lip["module.mlp.6.weight"] = torch.zeros(63, 65)
    folder = linked_copy(named_lp_dir, tmp_path / "lip_shape")
    replace(folder, RETARGETING_FILE, {**retargeting, "retarget_mouth": lip})
    pattern = r"\[retarget_mouth\].*lip network.*mlp\.6\.weight \(63, 65\) vs \(63, 64\)"
    with pytest.raises(WeightsError, match=pattern):
        load_networks(folder)


CASES = ["pickled_object", "plain_pickle", "truncated", "empty", "not_a_dict", "text"]


@pytest.mark.parametrize("case", CASES)
def test_unreadable_files_are_refused(named_lp_dir: Path, tmp_path: Path, case: str) -> None:
    folder = linked_copy(named_lp_dir, tmp_path / case)
    path = folder / APPEARANCE
    original = path.read_bytes()
    path.unlink()
    if case == "pickled_object":
        torch.save({"first.conv.weight": Gadget()}, path)  # loading it would have to run pickled code
        pattern = r"holds objects other than tensors \(.*Gadget\).*refused"
    elif case == "plain_pickle":
        path.write_bytes(pickle.dumps({"first.conv.weight": Gadget()}, protocol=2))
        pattern = r"holds objects other than tensors \(.*Gadget\).*refused"
    elif case == "truncated":
        path.write_bytes(original[: len(original) // 2])
        pattern = "cannot be read.*truncated"
    elif case == "empty":
        path.write_bytes(b"")
        pattern = "is empty"
    elif case == "not_a_dict":
        torch.save(torch.zeros(3), path)
        pattern = "holds a Tensor, not a state dict"
    else:
        path.write_text("not weights at all\n")
        pattern = "cannot be read"
    with pytest.raises(WeightsError, match=pattern) as error:
        load_networks(folder)
    assert re.search(re.escape(str(path)), str(error.value))


def test_random_networks_have_the_public_shapes() -> None:
    shapes = load_shapes()
    public = {name: shapes[role] for name, role in (
        ("appearance", "appearance_feature_extractor"), ("motion", "motion_extractor"),
        ("warping", "warping_module"), ("decoder", "spade_generator"),
    )}  # fmt: skip
    for name, entry in RETARGETING_ENTRIES.items():
        public[name] = {
            key.removeprefix("module."): shape
            for key, shape in shapes["stitching_retargeting_module"][entry].items()
        }
    networks = random_networks(seed=3)
    for name, module in networks.parts().items():
        assert not module.training
        ours = {key: list(value.shape) for key, value in module.state_dict().items()}
        assert ours == public[name], name
    total = sum(p.numel() for m in networks.parts().values() for p in m.parameters())
    assert total == sum(shapes["param_counts"].values())  # 130,077,432
    again = random_networks(seed=3)
    assert torch.equal(again.motion.detector.fc_kp.weight, networks.motion.detector.fc_kp.weight)
    assert torch.equal(again.decoder.fc.weight, networks.decoder.fc.weight)
