"""Trainer: learning, exact resumption, checkpoint format, logs and grids, divergence guards."""

import csv
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from animatica.errors import AnimaticaError
from animatica.fomm.checkpoint import read_checkpoint, save_checkpoint
from animatica.fomm.config import (
    FommConfig,
    config_to_dict,
    discriminator_kwargs,
    generator_kwargs,
    kp_detector_kwargs,
)
from animatica.fomm.discriminator import MultiScaleDiscriminator
from animatica.fomm.generator import OcclusionAwareGenerator
from animatica.fomm.keypoint_detector import KPDetector
from animatica.training import trainer as trainer_module
from animatica.training.errors import TrainingError
from animatica.training.trainer import Guard, MotionLostWarning, MotionWatch, export_inference, train

from .conftest import tiny_config

PUBLIC_KEYS = {
    "generator",
    "kp_detector",
    "discriminator",
    "optimizer_generator",
    "optimizer_kp_detector",
    "optimizer_discriminator",
    "epoch",
}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks gain nothing from a second thread, and a busy machine makes it much slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_loss_falls_over_50_steps(tiny_data: Path, tmp_path: Path) -> None:
    cfg = tiny_config()
    cfg.train_params.epoch_milestones = []
    out = train(
        cfg,
        tiny_data,
        out_dir=tmp_path / "run",
        steps=50,
        device="cpu",
        log_every=5,
        grid_every=25,
        progress_bar=False,
    )
    rows = _rows(tmp_path / "run" / "log.csv")
    assert [int(r["step"]) for r in rows] == list(range(5, 55, 5))
    first = sum(float(r["total"]) for r in rows[:2]) / 2
    last = sum(float(r["total"]) for r in rows[-2:]) / 2
    assert last < 0.8 * first, (first, last)
    assert float(rows[-1]["l1"]) < float(rows[0]["l1"])
    assert sorted(p.name for p in (tmp_path / "run" / "grids").iterdir()) == [
        "step-0000025.png",
        "step-0000050.png",
    ]
    data = read_checkpoint(out)
    assert set(data) >= PUBLIC_KEYS and data["config"] == config_to_dict(cfg)
    assert data["trainer"]["step"] == 50


def _params(path: Path) -> dict[str, torch.Tensor]:
    data = read_checkpoint(path)
    out = {}
    for part in ("generator", "kp_detector"):
        out.update({f"{part}.{k}": v for k, v in data[part].items()})
    for part in ("optimizer_generator", "optimizer_kp_detector"):
        for index, state in data[part]["state"].items():
            out.update({f"{part}.{index}.{k}": v for k, v in state.items() if isinstance(v, torch.Tensor)})
    return out


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_is_identical_to_an_uninterrupted_run(tiny_data: Path, tmp_path: Path, precision: str) -> None:
    # 3 batches per epoch, a milestone at epoch 3 and batch norm frozen from step 6: the 10 steps
    # cross epochs, the lr decay and the freeze.
    cfg = tiny_config({"freeze_batch_norm_after": 6})
    kwargs = {"device": "cpu", "log_every": 100, "grid_every": 0, "progress_bar": False}
    whole = train(cfg, tiny_data, out_dir=tmp_path / "whole", steps=10, precision=precision, **kwargs)
    part = train(cfg, tiny_data, out_dir=tmp_path / "part", steps=4, precision=precision, **kwargs)
    # No precision given: a resumed run continues in the arithmetic its checkpoint was trained in.
    resumed = train(None, tiny_data, checkpoint=part, out_dir=tmp_path / "resumed", steps=10, **kwargs)
    assert read_checkpoint(resumed)["trainer"]["precision"] == precision
    a, b = _params(whole), _params(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    whole_data, resumed_data = read_checkpoint(whole), read_checkpoint(resumed)
    assert whole_data["trainer"]["epoch"] == resumed_data["trainer"]["epoch"] == 3
    assert whole_data["optimizer_generator"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    assert resumed_data["optimizer_generator"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    # A stopped run differs from the whole one, so the comparison above can fail.
    c = _params(part)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_bf16_training_runs_in_bf16_with_float32_weights(tiny_data: Path, tmp_path: Path) -> None:
    cfg = tiny_config()
    kwargs = {"device": "cpu", "steps": 2, "log_every": 1, "grid_every": 2, "progress_bar": False}
    runs = {p: train(cfg, tiny_data, out_dir=tmp_path / p, precision=p, **kwargs) for p in ("fp32", "bf16")}
    fp32, bf16 = _params(runs["fp32"]), _params(runs["bf16"])
    assert all(v.dtype == torch.float32 for v in bf16.values() if v.is_floating_point())
    # Same seed and data: only the arithmetic differs, and it must show in the weights.
    assert not all(torch.equal(fp32[k], bf16[k]) for k in fp32)
    assert all(torch.isfinite(v).all() for v in bf16.values() if v.is_floating_point())
    assert (tmp_path / "bf16" / "grids" / "step-0000002.png").is_file()
    with pytest.raises(AnimaticaError, match="precision"):
        train(cfg, tiny_data, out_dir=tmp_path / "bad", precision="fp8", **kwargs)


@pytest.mark.slow
def test_adversarial_path_trains_the_discriminator(tiny_data: Path, tmp_path: Path) -> None:
    cfg = tiny_config(generator_gan=1, discriminator_gan=1, feature_matching=[10, 10, 10])
    before = {k: v.clone() for k, v in _fresh_discriminator(cfg).items()}
    out = train(
        cfg,
        tiny_data,
        out_dir=tmp_path / "gan",
        steps=3,
        device="cpu",
        log_every=3,
        grid_every=0,
        progress_bar=False,
    )
    row = _rows(tmp_path / "gan" / "log.csv")[0]
    assert {"generator_gan", "feature_matching", "discriminator_gan"} <= set(row)
    after = read_checkpoint(out)["discriminator"]
    # Without adversarial weights the discriminator is left exactly as initialised...
    idle = train(
        tiny_config(),
        tiny_data,
        out_dir=tmp_path / "idle",
        steps=1,
        device="cpu",
        grid_every=0,
        progress_bar=False,
    )
    idle_state = read_checkpoint(idle)["discriminator"]
    assert all(torch.equal(before[k], idle_state[k]) for k in before)
    # ...and with them it learns.
    assert any(
        not torch.equal(before[k], after[k])
        for k in before
        if k.endswith("weight_orig") or k.endswith("weight")
    )


def _fresh_discriminator(cfg: FommConfig) -> dict[str, torch.Tensor]:
    """The discriminator as the trainer initialises it (same seed, same construction order)."""
    torch.manual_seed(0)
    KPDetector(**kp_detector_kwargs(cfg))
    OcclusionAwareGenerator(**generator_kwargs(cfg))
    return MultiScaleDiscriminator(**discriminator_kwargs(cfg)).state_dict()


def test_guard_skips_bad_steps_and_stops_a_diverged_run() -> None:
    guard = Guard(explode_factor=10, max_consecutive=3, warmup=2)
    assert guard.accept(1.0) and guard.accept(1.0)
    assert not guard.accept(float("nan"))
    assert not guard.accept(50.0)  # ten times the running average
    assert guard.accept(1.2) and guard.skipped == 2 and guard.consecutive == 0
    with pytest.raises(TrainingError, match="diverged"):
        for _ in range(3):
            guard.accept(float("inf"))


def test_non_finite_losses_skip_updates_then_stop(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_forward = trainer_module.GeneratorObjective.forward

    def poisoned(self, *args: object):  # type: ignore[no-untyped-def]
        out, generated = real_forward(self, *args)
        out["perceptual"] = out["perceptual"] * float("nan")
        return out, generated

    monkeypatch.setattr(trainer_module.GeneratorObjective, "forward", poisoned)
    monkeypatch.setattr(trainer_module, "Guard", functools.partial(Guard, max_consecutive=2))
    with pytest.raises(TrainingError, match="diverged"):
        train(
            tiny_config(),
            tiny_data,
            out_dir=tmp_path / "nan",
            steps=5,
            device="cpu",
            grid_every=0,
            progress_bar=False,
        )


def test_motion_watch_warns_once_when_learned_motion_is_lost() -> None:
    watch = MotionWatch()
    assert watch.update(50, 0.99, 1.0) is None  # not learned yet: a ratio near 1 is just early
    assert watch.update(100, 0.8, 1.0) is None
    assert watch.update(150, 0.95, 1.0) is None  # worse, but still using motion
    message = watch.update(200, 0.99, 1.0)
    assert message is not None and "0.80x at step 100" in message and "lr_kp_detector" in message
    assert watch.update(250, 1.0, 1.0) is None  # once is enough
    assert watch.update(300, 1.0, 0.0) is None and watch.best == 0.8


def test_training_warns_when_the_reconstruction_falls_back_to_no_motion(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collapse takes minutes of real training; here the logged L1 is made to follow one."""
    real_forward = trainer_module.GeneratorObjective.forward
    calls = []

    def collapsing(self, *args: object):  # type: ignore[no-untyped-def]
        out, generated = real_forward(self, *args)
        calls.append(1)
        factor = 0.5 if len(calls) <= 2 else 1.0  # learned motion for two steps, then lost it
        out["l1"] = out["baseline_l1"].detach() * factor
        return out, generated

    monkeypatch.setattr(trainer_module.GeneratorObjective, "forward", collapsing)
    kwargs = {"device": "cpu", "grid_every": 0, "progress_bar": False, "log_every": 1}
    with pytest.warns(MotionLostWarning, match="step 3: .* 1.00x .* 0.50x at step 1"):
        out = train(tiny_config(), tiny_data, out_dir=tmp_path / "lost", steps=4, **kwargs)
    assert read_checkpoint(out)["trainer"]["motion_watch"]["warned"] is True


def test_reference_style_checkpoint_resumes_at_the_next_epoch(tiny_data: Path, tmp_path: Path) -> None:
    cfg = tiny_config()
    first = train(
        cfg, tiny_data, out_dir=tmp_path / "a", steps=1, device="cpu", grid_every=0, progress_bar=False
    )
    data = read_checkpoint(first)
    reference = {k: v for k, v in data.items() if k not in ("trainer", "config")}
    reference["epoch"] = 1
    save_checkpoint(tmp_path / "ref.pth.tar", reference)
    out = train(
        cfg,
        tiny_data,
        checkpoint=tmp_path / "ref.pth.tar",
        out_dir=tmp_path / "b",
        epochs=3,
        device="cpu",
        grid_every=0,
        progress_bar=False,
    )
    resumed = read_checkpoint(out)["trainer"]
    assert (resumed["epoch"], resumed["step"]) == (3, 9)  # epochs 0-1 counted as done, epoch 2 trained


def test_bad_inputs_are_explained(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no config"):
        train(None, tiny_data, out_dir=tmp_path / "x")
    cfg = tiny_config()
    cfg.train_params.batch_size = 64
    with pytest.raises(TrainingError, match="fewer than one batch"):
        train(cfg, tiny_data, out_dir=tmp_path / "x")


def test_export_keeps_only_inference_entries(tiny_data: Path, tmp_path: Path) -> None:
    full = train(
        tiny_config(),
        tiny_data,
        out_dir=tmp_path / "run",
        steps=1,
        device="cpu",
        grid_every=0,
        progress_bar=False,
    )
    small = export_inference(full, tmp_path / "model.pth.tar")
    assert set(read_checkpoint(small)) == {"generator", "kp_detector", "config", "epoch"}
    assert small.stat().st_size < full.stat().st_size


def test_frozen_batch_norm_keeps_its_running_statistics(tiny_data: Path, tmp_path: Path) -> None:
    cfg = tiny_config({"freeze_batch_norm_after": 2})
    kwargs = {"device": "cpu", "grid_every": 0, "progress_bar": False}
    at_freeze = read_checkpoint(train(cfg, tiny_data, out_dir=tmp_path / "a", steps=2, **kwargs))
    later = read_checkpoint(train(cfg, tiny_data, out_dir=tmp_path / "b", steps=4, **kwargs))
    stats = [k for k in at_freeze["generator"] if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(at_freeze["generator"][k], later["generator"][k]) for k in stats)
    assert not torch.equal(
        at_freeze["generator"]["first.conv.weight"], later["generator"]["first.conv.weight"]
    )
    unfrozen = read_checkpoint(train(tiny_config(), tiny_data, out_dir=tmp_path / "c", steps=4, **kwargs))
    assert not all(torch.equal(at_freeze["generator"][k], unfrozen["generator"][k]) for k in stats)
