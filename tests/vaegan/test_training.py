import csv

import pytest
import torch

from animatica.training.errors import TrainingError
from animatica.vaegan.checkpoint import read_checkpoint
from animatica.vaegan.training import CollapseWatch, train
from tests.vaegan.conftest import tiny_config


def _run(clips, out, steps, checkpoint=None, config=True):
    cfg = tiny_config() if config else None
    return train(
        cfg, clips, checkpoint=checkpoint, out_dir=out, steps=steps, device="cpu", precision="fp32",
        log_every=1, checkpoint_every=0, progress_bar=False,
    )  # fmt: skip


def _log(out):
    with (out / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_training_writes_a_checkpoint_with_its_config(clips, tmp_path):
    path = _run(clips, tmp_path / "run", steps=3)
    data = read_checkpoint(path)
    assert data["step"] == 3 and data["trainer"]["step"] == 3
    assert data["config"]["latent"] == 8
    rows = _log(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    # the discriminator trains from step adversarial_after (1) on, not before
    assert rows[0]["discriminator"] == "" and float(rows[2]["discriminator"]) > 0


@pytest.mark.slow
def test_resume_is_exact(clips, tmp_path):
    whole = read_checkpoint(_run(clips, tmp_path / "whole", steps=5))
    first = _run(clips, tmp_path / "part", steps=2)
    resumed = read_checkpoint(_run(clips, tmp_path / "part", steps=5, checkpoint=first, config=False))
    for part in ("encoder", "decoder", "discriminator"):
        for key, value in whole[part].items():
            assert torch.equal(value, resumed[part][key]), f"{part}.{key}"
    assert [r["total"] for r in _log(tmp_path / "whole")] == [r["total"] for r in _log(tmp_path / "part")]


def test_resume_refuses_another_config_or_batch(clips, tmp_path):
    first = _run(clips, tmp_path / "a", steps=1)
    with pytest.raises(TrainingError, match="another config"):
        train(tiny_config(latent=9), clips, checkpoint=first, out_dir=tmp_path / "b", steps=2, device="cpu")
    with pytest.raises(TrainingError, match="batch size 2"):
        train(None, clips, checkpoint=first, out_dir=tmp_path / "b", steps=2, device="cpu", batch_size=4)


def test_collapse_watch_warns_once_per_failure():
    watch = CollapseWatch(patience=2)
    assert watch.update(5, 0.001, None) == []  # a fresh encoder: nothing learned yet, nothing lost
    assert watch.update(6, 0.001, None) == []
    assert watch.update(10, 0.5, 1.0) == []
    assert watch.update(20, 0.001, 0.01) == []
    messages = watch.update(30, 0.001, 0.01)
    assert len(messages) == 2
    assert "posterior collapse" in messages[0] and "discriminator is winning" in messages[1]
    assert watch.update(40, 0.001, 0.01) == []
