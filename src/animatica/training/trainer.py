"""Training FOMM: the loop, checkpoints with exact resumption, guards, logs and progress.

Exact resumption means a run stopped at step N and resumed computes bit for bit what an
uninterrupted run computes (on the same device, thread count and precision). Everything random is therefore
either a pure function of the position in training (which frames an item uses, the epoch's
order — see ``datasets``) or drawn from the trainer's own generator, whose state goes into the
checkpoint with the optimisers, the learning-rate schedule position and the guard's state.

Checkpoints keep the public first-order-model layout (``generator``, ``kp_detector``,
``discriminator``, ``optimizer_generator``, ``optimizer_kp_detector``,
``optimizer_discriminator``, ``epoch``) so the reference code can read them; Animatica adds
``config`` (so inference needs no YAML) and ``trainer`` (the resume position and random state).
"""

from __future__ import annotations

import csv
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Adam
from torch.optim.lr_scheduler import MultiStepLR
from torch.utils.data import DataLoader
from tqdm import tqdm

from animatica.device import PRECISIONS, precision_name, resolve_device, resolve_precision
from animatica.fomm import config as fomm_config
from animatica.fomm.checkpoint import load_state_strict, read_checkpoint, resolve_checkpoint, save_checkpoint
from animatica.fomm.discriminator import MultiScaleDiscriminator
from animatica.fomm.generator import OcclusionAwareGenerator
from animatica.fomm.keypoint_detector import KPDetector
from animatica.training.datasets import DatasetRepeater, EpochBatches, FramesDataset
from animatica.training.errors import TrainingError
from animatica.training.objective import DiscriminatorObjective, GeneratorObjective
from animatica.training.transforms import RandomWarp
from animatica.training.visualize import save_grid, training_grid

CHECKPOINT_NAME = "checkpoint.pth.tar"
METRIC_ONLY = frozenset({"l1", "baseline_l1"})  # logged, never optimised
ProgressCallback = Callable[[int, int, dict[str, float]], None]


@dataclass
class Guard:
    """Skips steps whose loss is not finite or jumps far above its running average.

    One bad batch should not wreck hours of training, but a run that keeps producing them has
    diverged and must stop with advice instead of silently skipping forever.
    """

    explode_factor: float = 10.0
    max_consecutive: int = 20
    warmup: int = 20
    ema: float | None = None
    seen: int = 0
    consecutive: int = 0
    skipped: int = 0

    def accept(self, total: float) -> bool:
        bad = not math.isfinite(total) or (
            self.ema is not None and self.seen >= self.warmup and total > self.explode_factor * self.ema
        )
        if bad:
            self.skipped += 1
            self.consecutive += 1
            if self.consecutive >= self.max_consecutive:
                raise TrainingError(
                    f"training diverged: {self.consecutive} steps in a row had a non-finite or exploding "
                    f"loss (last {total:.4g}); lower the learning rates or resume from an earlier checkpoint."
                )
            return False
        self.consecutive = 0
        self.seen += 1
        self.ema = total if self.ema is None else 0.98 * self.ema + 0.02 * total
        return True

    def state(self) -> dict[str, Any]:
        return {"ema": self.ema, "seen": self.seen, "consecutive": self.consecutive, "skipped": self.skipped}

    def load(self, state: dict[str, Any]) -> None:
        self.ema, self.seen = state["ema"], state["seen"]
        self.consecutive, self.skipped = state["consecutive"], state["skipped"]


class MotionLostWarning(UserWarning):
    """A run that had learned to use motion reconstructs no better than copying the source again."""


@dataclass
class MotionWatch:
    """Notices when a run loses the motion it had learned, which no loss guard catches.

    The failure seen on procedural data at a high keypoint-detector learning rate: the detector
    collapses (its keypoints stop following the image), the generator falls back to copying the
    source, and the reconstruction L1 climbs back to the no-motion baseline's while every loss
    stays finite and smooth. The watch compares each log window's L1 with the same batches'
    baseline L1 and warns once when the ratio returns near 1 after having been clearly lower.
    """

    learned: float = 0.9  # a ratio below this means the model was using motion
    lost: float = 0.97  # and one above this, afterwards, means it no longer does
    best: float | None = None
    best_step: int = 0
    warned: bool = False

    def update(self, step: int, l1: float, baseline_l1: float) -> str | None:
        """Feed one log window's mean L1s; returns the warning text the first time motion is lost."""
        if not baseline_l1 > 0 or not math.isfinite(l1):
            return None
        ratio = l1 / baseline_l1
        if self.best is None or ratio < self.best:
            self.best, self.best_step = ratio, step
        if self.warned or self.best >= self.learned or ratio <= self.lost:
            return None
        self.warned = True
        return (
            f"step {step}: the reconstruction L1 is back at {ratio:.2f}x the no-motion baseline's "
            f"(it was {self.best:.2f}x at step {self.best_step}). The keypoint detector has most likely "
            "collapsed (look for a jump in equivariance_value in log.csv); resume from a checkpoint "
            "saved before it with a lower lr_kp_detector, or restart with one."
        )

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "warned": self.warned}

    def load(self, state: dict[str, Any]) -> None:
        self.best, self.best_step, self.warned = state["best"], state["best_step"], state["warned"]


@dataclass
class Position:
    """Where training is: the next batch to run is ``batch`` of epoch ``epoch``."""

    epoch: int = 0
    batch: int = 0
    step: int = 0


class LoopTrainer:
    """What every trainer here shares: the epoch-ordered loader, the step loop with its log, progress,
    periodic checkpoints and wall-clock budget, saving, and the resume checks.

    A subclass sets the attributes below in its ``__init__`` and supplies ``train_step`` (one
    optimisation step: the logged values and anything ``after_step`` wants, None when skipped)
    and ``state``; the ``log_columns``, ``on_log``, ``after_step`` and ``on_epoch_end`` hooks are
    optional.
    """

    checkpoint_name: str
    out_dir: Path
    dataset: Any
    batch_size: int
    seed: int
    num_workers: int
    device: torch.device
    guard: Guard
    position: Position

    @property
    def batches_per_epoch(self) -> int:
        return len(self.dataset) // self.batch_size

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def train_step(self, batch: dict[str, Any]) -> tuple[dict[str, float], Any]:
        raise NotImplementedError

    def log_columns(self) -> dict[str, Any]:
        """Columns of every log row after step and epoch (the CSV keeps the first row's columns)."""
        return {}

    def on_log(self, row: dict[str, Any]) -> None:
        """Called with every log row, e.g. to warn about a failure no loss shows."""

    def after_step(self, batch: dict[str, Any], produced: Any) -> None:
        """Called after every step with what ``train_step`` returned besides the values."""

    def on_epoch_end(self) -> None:
        """Called when an epoch's last batch has run (learning-rate schedules)."""

    def save(self, path: Path | None = None) -> Path:
        path = path or self.out_dir / self.checkpoint_name
        save_checkpoint(path, self.state())
        return path

    def check_resumable(self, trainer: dict[str, Any], source: Path) -> None:
        """An exact continuation needs the batch size and seed the checkpoint was trained with."""
        if trainer.get("batch_size") != self.batch_size or trainer.get("seed") != self.seed:
            raise TrainingError(
                f"checkpoint {source} was trained with batch size {trainer.get('batch_size')} and seed "
                f"{trainer.get('seed')}; resume with the same values for an exact continuation."
            )

    @staticmethod
    def load_optimizers(
        data: dict[str, Any], optimizers: dict[str, torch.optim.Optimizer], source: Path
    ) -> None:
        """Load the optimiser states ``data`` has (by key); one that does not fit is an error naming it."""
        for key, opt in optimizers.items():
            if key not in data:
                continue
            try:
                opt.load_state_dict(data[key])
            except (ValueError, KeyError) as exc:
                raise TrainingError(
                    f"checkpoint {source}: {key} does not fit the networks ({exc})."
                ) from None

    def _loader(self) -> DataLoader:
        sampler = EpochBatches(
            len(self.dataset), self.batch_size, self.seed, self.position.epoch, self.position.batch
        )
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )

    def _log_row(self, totals: dict[str, float], count: int, elapsed: float) -> dict[str, Any]:
        row: dict[str, Any] = {"step": self.position.step, "epoch": self.position.epoch, **self.log_columns()}
        row.update({k: round(v / max(count, 1), 6) for k, v in totals.items()})
        row["skipped"] = self.guard.skipped
        row["seconds_per_step"] = round(elapsed / max(count, 1), 4)
        return row

    def train_loop(
        self,
        steps: int,
        log_every: int = 50,
        checkpoint_every: int = 1000,
        on_progress: ProgressCallback | None = None,
        progress_bar: bool = True,
        max_seconds: float | None = None,
    ) -> Path:
        """Train until ``steps`` optimisation steps in total; returns the final checkpoint.

        ``max_seconds`` stops after the step that crosses the wall-clock budget; the checkpoint
        then resumes exactly where it stopped. An interrupt saves before it propagates.
        """
        per_epoch = self.batches_per_epoch
        self.out_dir.mkdir(parents=True, exist_ok=True)
        log = _CsvLog(self.out_dir / "log.csv")
        totals: dict[str, float] = {}
        count = 0
        started = run_start = time.perf_counter()
        bar = tqdm(total=steps, initial=min(self.position.step, steps), disable=not progress_bar, unit="step")
        try:
            while self.position.step < steps:
                for batch in self._loader():
                    values, produced = self.train_step(batch)
                    pos = self.position
                    pos.step += 1
                    pos.batch += 1
                    for k, v in values.items():
                        totals[k] = totals.get(k, 0.0) + v
                    count += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['total']:.4g}", l1=f"{values['l1']:.4f}")
                    if on_progress is not None:
                        on_progress(pos.step, steps, values)
                    if pos.step % log_every == 0 or pos.step == steps:
                        row = self._log_row(totals, count, time.perf_counter() - started)
                        log.write(row)
                        self.on_log(row)
                        totals, count, started = {}, 0, time.perf_counter()
                    self.after_step(batch, produced)
                    if checkpoint_every and pos.step % checkpoint_every == 0 and pos.step < steps:
                        self.save()
                    out_of_time = max_seconds is not None and time.perf_counter() - run_start > max_seconds
                    if pos.step >= steps or out_of_time:
                        break
                if self.position.batch >= per_epoch:
                    self.position.epoch += 1
                    self.position.batch = 0
                    self.on_epoch_end()
                if max_seconds is not None and time.perf_counter() - run_start > max_seconds:
                    break
        except KeyboardInterrupt:
            self.save()
            raise
        finally:
            bar.close()
        return self.save()


def read_resume(
    checkpoint: str | Path | None,
    checkpoints_dir: Path | None,
    resolve: Callable[[str | Path, Path | None], Path],
    read: Callable[[Path], dict[str, Any]],
) -> tuple[Path | None, dict[str, Any] | None]:
    """The checkpoint to resume from (a path or a name, found by the model's ``resolve``) and its
    contents (the model's ``read``); ``(None, None)`` for a new run."""
    if checkpoint is None:
        return None, None
    source = resolve(checkpoint, checkpoints_dir)
    return source, read(source)


def resume_precision(precision: str, data_ckpt: dict[str, Any] | None) -> str:
    """``auto`` resumes in the precision the checkpoint was trained in (an exact continuation needs
    the same arithmetic); a new run, or an explicit choice, keeps ``precision``."""
    resumed = data_ckpt.get("trainer") if data_ckpt is not None else None
    if precision == "auto" and isinstance(resumed, dict) and resumed.get("precision") in PRECISIONS:
        return resumed["precision"]
    return precision


def _load_config(
    config: str | Path | fomm_config.FommConfig | None, stored: dict | None
) -> fomm_config.FommConfig:
    if isinstance(config, fomm_config.FommConfig):
        cfg = config
    elif config is not None:
        cfg = fomm_config.load_config(config)
    elif stored is not None:
        cfg = fomm_config.config_from_dict(stored)
    else:
        raise TrainingError("no config given; pass --config (a built-in name or a YAML file).")
    if cfg.train_params is None:
        raise TrainingError("the config has no train_params section; add one (see the built-in 'vox-256').")
    return cfg


class Trainer(LoopTrainer):
    """Owns the networks, optimisers and position; ``run`` trains until a step or epoch budget."""

    checkpoint_name = CHECKPOINT_NAME

    def __init__(
        self,
        cfg: fomm_config.FommConfig,
        data: Path,
        out_dir: Path,
        vgg_weights: Path | None = None,
        device: str = "auto",
        seed: int = 0,
        num_workers: int = 0,
        batch_size: int | None = None,
        precision: str = "auto",
    ):
        assert cfg.train_params is not None
        self.cfg = cfg
        self.tp = cfg.train_params.model_dump()
        self.out_dir = Path(out_dir)
        self.device = resolve_device(device)
        # Mixed precision: forward passes and losses in bfloat16 where the hardware has bf16 units
        # (1.7x faster demo-64 steps on an AMX Xeon), weights, optimiser state and gradients in float32.
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.seed = seed
        self.num_workers = num_workers
        self.batch_size = batch_size or self.tp["batch_size"]
        torch.manual_seed(seed)
        self.kp_detector = KPDetector(**fomm_config.kp_detector_kwargs(cfg))
        self.generator = OcclusionAwareGenerator(**fomm_config.generator_kwargs(cfg))
        self.discriminator = MultiScaleDiscriminator(**fomm_config.discriminator_kwargs(cfg))
        for net in (self.kp_detector, self.generator, self.discriminator):
            net.to(self.device).train()
        betas = (0.5, 0.999)
        self.opt_generator = Adam(self.generator.parameters(), lr=self.tp["lr_generator"], betas=betas)
        self.opt_kp_detector = Adam(self.kp_detector.parameters(), lr=self.tp["lr_kp_detector"], betas=betas)
        self.opt_discriminator = Adam(
            self.discriminator.parameters(), lr=self.tp["lr_discriminator"], betas=betas
        )
        milestones = list(self.tp["epoch_milestones"])
        self.schedulers = [
            MultiStepLR(opt, milestones=milestones, gamma=0.1)
            for opt in (self.opt_generator, self.opt_kp_detector, self.opt_discriminator)
        ]
        weights = self.tp["loss_weights"]
        self.train_discriminator = weights.get("discriminator_gan", 0) > 0
        self.generator_objective: nn.Module = GeneratorObjective(
            self.kp_detector, self.generator, self.discriminator, self.tp, vgg_weights
        ).to(self.device)
        self.discriminator_objective: nn.Module = DiscriminatorObjective(self.discriminator, self.tp).to(
            self.device
        )
        if self.device.type == "cuda" and torch.cuda.device_count() > 1:
            self.generator_objective = nn.DataParallel(self.generator_objective)
            self.discriminator_objective = nn.DataParallel(self.discriminator_objective)
        self.warps = torch.Generator().manual_seed(seed)
        self.grid_every = 500  # run() sets it
        self.guard = Guard()
        self.motion_watch = MotionWatch()
        self.position = Position()
        dataset = FramesDataset(
            Path(data),
            frame_shape=fomm_config.frame_size(cfg),
            is_train=True,
            id_sampling=bool(getattr(cfg.dataset_params, "id_sampling", False)),
            augmentation_params=getattr(cfg.dataset_params, "augmentation_params", None),
            seed=seed,
        )
        self.dataset = DatasetRepeater(dataset, self.tp["num_repeats"])
        if len(self.dataset) < self.batch_size:
            raise TrainingError(
                f"the training set gives {len(self.dataset)} samples per epoch, fewer than one batch of "
                f"{self.batch_size}; add videos, raise num_repeats or lower batch_size."
            )

    # --- checkpoints ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        pos = self.position
        return {
            "generator": self.generator.state_dict(),
            "kp_detector": self.kp_detector.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "optimizer_generator": self.opt_generator.state_dict(),
            "optimizer_kp_detector": self.opt_kp_detector.state_dict(),
            "optimizer_discriminator": self.opt_discriminator.state_dict(),
            # The reference counts completed epochs from 0: a mid-epoch save belongs to the previous one.
            "epoch": pos.epoch - 1 if pos.batch == 0 else pos.epoch,
            "config": fomm_config.config_to_dict(self.cfg),
            "trainer": {
                "epoch": pos.epoch,
                "batch": pos.batch,
                "step": pos.step,
                "seed": self.seed,
                "batch_size": self.batch_size,
                "precision": precision_name(self.autocast_dtype),
                "warp_rng": self.warps.get_state(),
                "guard": self.guard.state(),
                "motion_watch": self.motion_watch.state(),
            },
        }

    def restore(self, data: dict, source: Path) -> None:
        """Load networks, optimisers and position; a reference checkpoint resumes at its next epoch."""
        load_state_strict(self.generator, data["generator"], "generator", source)
        load_state_strict(self.kp_detector, data["kp_detector"], "keypoint detector", source)
        if "discriminator" in data:
            load_state_strict(self.discriminator, data["discriminator"], "discriminator", source)
        optimizers = {
            "optimizer_generator": self.opt_generator,
            "optimizer_kp_detector": self.opt_kp_detector,
            "optimizer_discriminator": self.opt_discriminator,
        }
        self.load_optimizers(data, optimizers, source)
        trainer = data.get("trainer")
        if isinstance(trainer, dict):
            self.check_resumable(trainer, source)
            self.position = Position(trainer["epoch"], trainer["batch"], trainer["step"])
            self.warps.set_state(trainer["warp_rng"])
            self.guard.load(trainer["guard"])
            if "motion_watch" in trainer:  # a checkpoint without one resumes with a fresh watch
                self.motion_watch.load(trainer["motion_watch"])
        else:
            epoch = int(data.get("epoch", -1)) + 1
            self.position = Position(epoch, 0, epoch * self.batches_per_epoch)
        for scheduler in self.schedulers:
            scheduler.last_epoch = self.position.epoch

    # --- training ------------------------------------------------------------------------------

    def _freeze_batch_norm(self) -> None:
        """From ``train_params.freeze_batch_norm_after`` steps on, batch norm uses its running statistics.

        Batch norm normalises by the statistics of the batch. When a batch holds a few clips with
        unrelated colours (procedural data, small batches), the absolute colour a decoder has to
        restore changes with the batch's company, and the generator learns slowly. After a
        warm-up the running statistics are good estimates for the whole data set; using them
        turns each batch norm into a fixed affine map that training keeps adjusting through its
        weight and bias. An Animatica extension of the public config (unset: reference behaviour).
        """
        after = self.tp.get("freeze_batch_norm_after")
        frozen = after is not None and self.position.step >= after
        for net in (self.generator, self.kp_detector):
            for module in net.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training == frozen:
                    module.train(not frozen)

    def train_step(self, batch: dict[str, Any]) -> tuple[dict[str, float], dict[str, torch.Tensor] | None]:
        """One optimisation step; returns the losses and the generated tensors (None if skipped)."""
        self._freeze_batch_norm()
        source = batch["source"].to(self.device)
        driving = batch["driving"].to(self.device)
        transform = self.tp["transform_params"]
        warp = RandomWarp.sample(
            source.shape[0],
            transform["sigma_affine"],
            transform.get("sigma_tps"),
            transform.get("points_tps"),
            generator=self.warps,
        )
        weights = warp.weights if warp.weights is not None else torch.zeros(source.shape[0], 1, 2)
        with self._autocast():
            losses, generated = self.generator_objective(
                source, driving, warp.affine.to(self.device), weights.to(self.device)
            )
            losses = {k: v.float().mean() for k, v in losses.items()}
        total = sum(v for k, v in losses.items() if k not in METRIC_ONLY)
        assert isinstance(total, torch.Tensor)
        values = {k: float(v.detach()) for k, v in losses.items()}
        values["total"] = float(total.detach())
        if not self.guard.accept(values["total"]):
            return values, None
        total.backward()
        self.opt_generator.step()
        self.opt_kp_detector.step()
        self.opt_generator.zero_grad(set_to_none=True)
        self.opt_kp_detector.zero_grad(set_to_none=True)
        if self.train_discriminator:
            with self._autocast():
                d_losses = self.discriminator_objective(
                    driving, generated["prediction"], generated["kp_driving"]
                )
                d_loss = d_losses["discriminator_gan"].float().mean()
            if math.isfinite(float(d_loss.detach())):
                d_loss.backward()
                self.opt_discriminator.step()
            self.opt_discriminator.zero_grad(set_to_none=True)
            values["discriminator_gan"] = float(d_loss.detach())
        return values, generated

    def _autocast(self) -> torch.autocast:
        enabled = self.autocast_dtype != torch.float32
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=enabled)

    def run(
        self,
        steps: int | None = None,
        epochs: int | None = None,
        log_every: int = 50,
        grid_every: int = 500,
        checkpoint_every: int = 1000,
        on_progress: ProgressCallback | None = None,
        progress_bar: bool = True,
        max_seconds: float | None = None,
    ) -> Path:
        """Train until ``steps`` optimisation steps or ``epochs`` epochs in total; returns the checkpoint.

        ``max_seconds`` stops earlier, after the step that crosses the wall-clock budget (the
        checkpoint then resumes exactly where it stopped).
        """
        if steps is None:
            steps = (epochs if epochs is not None else self.tp["num_epochs"]) * self.batches_per_epoch
        elif epochs is not None:
            steps = min(steps, epochs * self.batches_per_epoch)
        self.grid_every = grid_every
        return self.train_loop(steps, log_every, checkpoint_every, on_progress, progress_bar, max_seconds)

    def log_columns(self) -> dict[str, Any]:
        return {"lr_generator": self.opt_generator.param_groups[0]["lr"]}

    def on_log(self, row: dict[str, Any]) -> None:
        lost = self.motion_watch.update(self.position.step, row["l1"], row["baseline_l1"])
        if lost is not None:
            warnings.warn(lost, MotionLostWarning, stacklevel=3)

    def after_step(self, batch: dict[str, Any], produced: dict[str, torch.Tensor] | None) -> None:
        if produced is not None and self.grid_every and self.position.step % self.grid_every == 0:
            grid = training_grid(batch["source"], batch["driving"], produced)
            save_grid(self.out_dir / "grids" / f"step-{self.position.step:07d}.png", grid)

    def on_epoch_end(self) -> None:
        with warnings.catch_warnings():
            # The discriminator's optimiser never steps when it is not trained.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            for scheduler in self.schedulers:
                scheduler.step()


class _CsvLog:
    """Appends rows to a CSV, keeping the columns of the first row (new keys are dropped)."""

    def __init__(self, path: Path):
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file() and path.stat().st_size:
            with path.open(newline="", encoding="utf-8") as handle:
                self.fields = next(csv.reader(handle), None)

    def write(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if self.fields is None:
            self.fields = list(row)
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def train(
    config: str | Path | fomm_config.FommConfig | None,
    data: Path,
    checkpoint: str | Path | None = None,
    out_dir: Path = Path("runs/train"),
    vgg_weights: Path | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    device: str = "auto",
    seed: int = 0,
    batch_size: int | None = None,
    num_workers: int = 0,
    log_every: int = 50,
    grid_every: int = 500,
    checkpoint_every: int = 1000,
    on_progress: ProgressCallback | None = None,
    progress_bar: bool = True,
    max_seconds: float | None = None,
    precision: str = "auto",
    checkpoints_dir: Path | None = None,
) -> Path:
    """Train (or resume from ``checkpoint``) and return the path of the final checkpoint.

    ``config`` may be omitted when resuming from a checkpoint that stores its config.
    ``steps``/``epochs`` are totals counted from the start of training, not from the resume point.
    ``precision`` ``auto`` resumes in the precision the checkpoint was trained in (an exact
    continuation needs the same arithmetic); a new run takes bf16 where it is fast.
    A bare ``checkpoint`` name is looked up among the shipped ones and in ``checkpoints_dir``.
    """
    source, data_ckpt = read_resume(checkpoint, checkpoints_dir, resolve_checkpoint, read_checkpoint)
    stored = data_ckpt.get("config") if data_ckpt is not None else None
    cfg = _load_config(config, stored if isinstance(stored, dict) else None)
    precision = resume_precision(precision, data_ckpt)
    trainer = Trainer(
        cfg, Path(data), Path(out_dir), vgg_weights, device, seed, num_workers, batch_size, precision
    )
    if data_ckpt is not None and source is not None:
        trainer.restore(data_ckpt, source)
    return trainer.run(
        steps=steps,
        epochs=epochs,
        log_every=log_every,
        grid_every=grid_every,
        checkpoint_every=checkpoint_every,
        on_progress=on_progress,
        progress_bar=progress_bar,
        max_seconds=max_seconds,
    )


def export_inference(checkpoint: Path, out: Path) -> Path:
    """Keep only what animation needs (generator, keypoint detector, config, epoch), e.g. to ship a model."""
    data = read_checkpoint(Path(checkpoint))
    if not isinstance(data.get("config"), dict):
        raise TrainingError(
            f"checkpoint {checkpoint} stores no config; only Animatica's own checkpoints can be exported."
        )
    entries = {key: data[key] for key in ("generator", "kp_detector", "config", "epoch") if key in data}
    save_checkpoint(Path(out), entries)
    return Path(out)
