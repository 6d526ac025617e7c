import pytest
import torch

from animatica.errors import CheckpointError
from animatica.fomm.checkpoint import save_checkpoint
from animatica.vaegan.checkpoint import (
    checkpoint_config,
    is_vaegan_checkpoint,
    load_state_strict,
    read_checkpoint,
    resolve_checkpoint,
)
from animatica.vaegan.encoder import Encoder
from tests.vaegan.conftest import tiny_config


def test_round_trip(random_checkpoint):
    data = read_checkpoint(random_checkpoint)
    cfg = checkpoint_config(data, random_checkpoint)
    assert cfg == tiny_config()
    encoder = Encoder(cfg)
    load_state_strict(encoder, data["encoder"], "encoder", random_checkpoint)
    assert torch.equal(encoder.state_dict()["linears.0.weight"], data["encoder"]["linears.0.weight"])


def test_strict_loading_names_bad_keys(random_checkpoint):
    data = read_checkpoint(random_checkpoint)
    state = dict(data["encoder"])
    state.pop("linears.0.bias")
    state["extra.weight"] = torch.zeros(1)
    state["linears.2.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError) as info:
        load_state_strict(Encoder(tiny_config()), state, "encoder", random_checkpoint)
    message = str(info.value)
    assert "missing keys: linears.0.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "linears.2.weight (3, 3)" in message


def test_foreign_and_damaged_files(tmp_path, random_checkpoint):
    fomm = tmp_path / "fomm.pth.tar"
    save_checkpoint(fomm, {"generator": {}, "kp_detector": {}})
    with pytest.raises(CheckpointError, match="not a vaegan checkpoint; it is a FOMM checkpoint"):
        read_checkpoint(fomm)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(random_checkpoint.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_checkpoint(broken)
    assert is_vaegan_checkpoint(random_checkpoint) and not is_vaegan_checkpoint(fomm)


def test_names_resolve_in_the_checkpoints_folder_first(tmp_path, random_checkpoint):
    folder = tmp_path / "named"
    folder.mkdir()
    (folder / "vaegan-demo.pth").write_bytes(random_checkpoint.read_bytes())
    assert resolve_checkpoint("vaegan-demo", folder) == folder / "vaegan-demo.pth"
    with pytest.raises(CheckpointError, match="vaegan checkpoint nope not found"):
        resolve_checkpoint("nope", folder)
