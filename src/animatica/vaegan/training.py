"""Training the VAE+GAN: the loop, checkpoints with exact resumption, collapse warnings, progress.

It shares FOMM's trainer's parts (``training/trainer.py``: ``LoopTrainer``'s step loop, log,
progress, periodic and atomic checkpoints, resume checks; the frame-folder datasets with their
position-seeded items and epoch orders; the loss guard; the precision choice, bf16 where the
hardware makes it fast). For the plain model each training item is two frames of one clip, both
trained on as plain images. A model conditioned on the source photo trains as it animates:
``decode(z_source + z_driving - z_initial, source)`` against the target, on cross-identity items
of a synthetic faces dataset (``training/faces/pairs.py``: A's photo, B's motion, A rendered
making it) or, on other frame folders, on a clip's own frames.

Each step first trains the VAE (KL + reconstruction + the discriminator's verdict that the
reconstruction is real, + optional feature matching and perceptual terms), then the
discriminator on real images against the reconstructions, as in the reproduced method.
Exact resumption: the reparameterisation noise comes from the trainer's own generator, whose
state is saved with the optimisers, the position, the guard and the collapse watch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim import Adam

from animatica.device import precision_name, resolve_device, resolve_precision
from animatica.training.datasets import DatasetRepeater, FramesDataset
from animatica.training.errors import TrainingError
from animatica.training.faces.pairs import FacePairs, is_faces_dataset
from animatica.training.trainer import Guard, LoopTrainer, Position, read_resume, resume_precision
from animatica.vaegan import checkpoint as ckpt
from animatica.vaegan.config import VaeganConfig, config_to_dict, load_config
from animatica.vaegan.decoder import Decoder, moved_latent
from animatica.vaegan.discriminator import Discriminator
from animatica.vaegan.encoder import Encoder

CHECKPOINT_NAME = "checkpoint.pth"
ProgressCallback = Callable[[int, int, dict[str, float]], None]


class CollapseWarning(UserWarning):
    """The VAE+GAN stopped learning something useful while every loss stays finite."""


@dataclass
class CollapseWatch:
    """Notices the two quiet failures of a VAE+GAN, warning once for each.

    Posterior collapse: the KL per latent dimension falls near 0, the encoder's output no longer
    depends on the image, and every frame decodes to the same average face (animation by latent
    differences then moves nothing). The discriminator winning: its loss on real vs
    reconstructed images falls near 0, its verdict saturates, and the adversarial gradient the
    decoder gets carries no information.

    A fresh encoder's KL is near 0 too (its means start near 0), so collapse is only reported
    once the KL has been above the floor: a run that learned to use its latent and lost it.
    """

    kl_floor: float = 0.01  # nats per latent dimension
    d_floor: float = 0.05  # discriminator loss (sum of the real and fake BCE)
    patience: int = 3  # log windows in a row
    kl_seen: bool = False
    low_kl: int = 0
    low_d: int = 0
    warned_kl: bool = False
    warned_d: bool = False

    def update(self, step: int, kl_per_dim: float, d_loss: float | None) -> list[str]:
        messages = []
        self.kl_seen = self.kl_seen or kl_per_dim >= self.kl_floor
        self.low_kl = self.low_kl + 1 if self.kl_seen and kl_per_dim < self.kl_floor else 0
        if self.low_kl >= self.patience and not self.warned_kl:
            self.warned_kl = True
            messages.append(
                f"step {step}: posterior collapse: the KL is {kl_per_dim:.4f} nats per latent dimension, "
                "so the encoder ignores its input; lower loss.kl or raise train.kl_warmup_steps, and "
                "resume from a checkpoint saved before it."
            )
        self.low_d = self.low_d + 1 if d_loss is not None and d_loss < self.d_floor else 0
        if self.low_d >= self.patience and not self.warned_d:
            self.warned_d = True
            messages.append(
                f"step {step}: the discriminator is winning (its loss is {d_loss:.4f}), so its verdict no "
                "longer teaches the decoder; lower train.lr_discriminator or loss.adversarial."
            )
        return messages

    def state(self) -> dict[str, Any]:
        return {
            "kl_seen": self.kl_seen,
            "low_kl": self.low_kl,
            "low_d": self.low_d,
            "warned_kl": self.warned_kl,
            "warned_d": self.warned_d,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.kl_seen, self.low_kl, self.low_d = state["kl_seen"], state["low_kl"], state["low_d"]
        self.warned_kl, self.warned_d = state["warned_kl"], state["warned_d"]


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per image, summed over the latent: ``(N,)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)


def reconstruction_loss(kind: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per image, summed over pixels and channels: ``(N,)``. ``bce`` treats each intensity as the
    probability of a Bernoulli pixel (the method's BCELoss), ``l1`` is the absolute difference."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)
    return (torch.sigmoid(logits) - target).abs().flatten(1).sum(1)


class VaeganTrainer(LoopTrainer):
    """Owns the networks, optimisers and position; ``train_loop`` trains until a step budget."""

    checkpoint_name = CHECKPOINT_NAME

    def __init__(
        self,
        cfg: VaeganConfig,
        data: Path,
        out_dir: Path,
        device: str = "auto",
        seed: int = 0,
        num_workers: int = 0,
        batch_size: int | None = None,
        precision: str = "auto",
        vgg_weights: Path | None = None,
    ):
        self.cfg = cfg
        self.tp = cfg.train
        self.out_dir = Path(out_dir)
        self.device = resolve_device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.seed = seed
        self.num_workers = num_workers
        self.batch_size = batch_size or self.tp.batch_size
        torch.manual_seed(seed)
        self.encoder = Encoder(cfg).to(self.device).train()
        self.decoder = Decoder(cfg).to(self.device).train()
        self.discriminator = Discriminator(cfg).to(self.device).train()
        betas = (self.tp.beta1, self.tp.beta2)
        self.opt_vae = Adam(
            [*self.encoder.parameters(), *self.decoder.parameters()], lr=self.tp.lr, betas=betas
        )
        self.opt_discriminator = Adam(
            self.discriminator.parameters(), lr=self.tp.lr_discriminator, betas=betas
        )
        self.perceptual = None
        if cfg.loss.perceptual > 0:
            from animatica.training.losses import PerceptualLoss

            self.perceptual = PerceptualLoss([1.0] * 5, vgg_weights).to(self.device)
        self.noise = torch.Generator().manual_seed(seed)
        self.guard = Guard()
        self.watch = CollapseWatch()
        self.position = Position()
        dataset: Any
        if cfg.condition == "source" and is_faces_dataset(Path(data)):
            dataset = FacePairs(Path(data), cfg.size, self.tp.cross_identity, seed=seed)
        elif cfg.loss.mouth > 0 or cfg.loss.mouth_painted > 0:
            raise TrainingError(
                "loss.mouth and loss.mouth_painted weigh the mouth region that a synthetic faces dataset "
                "marks: train a model with condition: source on one (animatica data synth --kind faces), "
                "or set both to 0."
            )
        else:
            dataset = FramesDataset(
                Path(data), frame_shape=cfg.frame_size, is_train=True, id_sampling=True, seed=seed
            )
        self.dataset = DatasetRepeater(dataset, self.tp.num_repeats)
        if len(self.dataset) < self.batch_size:
            raise TrainingError(
                f"the training set gives {len(self.dataset)} samples per epoch, fewer than one batch of "
                f"{self.batch_size}; add clips, raise train.num_repeats or lower the batch size."
            )

    # --- checkpoints ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        pos = self.position
        entries = ckpt.inference_entries(self.cfg, self.encoder, self.decoder, pos.step)
        entries.update(
            discriminator=self.discriminator.state_dict(),
            optimizer_vae=self.opt_vae.state_dict(),
            optimizer_discriminator=self.opt_discriminator.state_dict(),
            trainer={
                "epoch": pos.epoch,
                "batch": pos.batch,
                "step": pos.step,
                "seed": self.seed,
                "batch_size": self.batch_size,
                "precision": precision_name(self.autocast_dtype),
                "noise_rng": self.noise.get_state(),
                "guard": self.guard.state(),
                "watch": self.watch.state(),
            },
        )
        return entries

    def restore(self, data: dict[str, Any], source: Path) -> None:
        ckpt.load_state_strict(self.encoder, data["encoder"], "encoder", source)
        ckpt.load_state_strict(self.decoder, data["decoder"], "decoder", source)
        trainer = data.get("trainer")
        if "discriminator" not in data or not isinstance(trainer, dict):
            raise TrainingError(
                f"checkpoint {source} holds inference weights only (no discriminator, optimisers or "
                "position); resume from a training checkpoint (out-dir/checkpoint.pth)."
            )
        ckpt.load_state_strict(self.discriminator, data["discriminator"], "discriminator", source)
        optimizers = {"optimizer_vae": self.opt_vae, "optimizer_discriminator": self.opt_discriminator}
        missing = [key for key in optimizers if key not in data]
        if missing:
            raise TrainingError(
                f"checkpoint {source} has no {', '.join(missing)}; it cannot resume training."
            )
        self.load_optimizers(data, optimizers, source)
        self.check_resumable(trainer, source)
        self.position = Position(trainer["epoch"], trainer["batch"], trainer["step"])
        self.noise.set_state(trainer["noise_rng"])
        self.guard.load(trainer["guard"])
        self.watch.load(trainer["watch"])

    # --- training ------------------------------------------------------------------------------

    def _autocast(self) -> torch.autocast:
        enabled = self.autocast_dtype != torch.float32
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=enabled)

    def train_step(self, batch: dict[str, Any]) -> tuple[dict[str, float], None]:
        """One VAE step then one discriminator step; returns the losses (per image)."""
        conditioned = self.cfg.condition == "source"
        if conditioned:
            # The use: decode(z_source + z_driving - z_initial, source) against the target; a plain
            # frame dataset's pair is (source, driving) with the source as the initial frame.
            source = batch["source"].to(self.device)
            initial = batch.get("initial", batch["source"]).to(self.device)
            driving = batch["driving"].to(self.device)
            images = batch.get("target", batch["driving"]).to(self.device)
            inputs = torch.cat([source, initial, driving])
        else:
            images = inputs = torch.cat([batch["source"], batch["driving"]]).to(self.device)
        weights = self.cfg.loss
        step = self.position.step
        kl_weight = weights.kl * min(1.0, (step + 1) / max(1, self.tp.kl_warmup_steps))
        adversarial = weights.adversarial > 0 and step >= self.tp.adversarial_after
        noise = torch.randn(inputs.shape[0], self.cfg.latent, generator=self.noise).to(self.device)
        with self._autocast():
            mu, logvar = self.encoder(inputs)
            z = mu + noise * (0.5 * logvar.float()).exp()
            if conditioned:
                # The photo's and the initial frame's posterior means, as animation uses them; the
                # driving frame's sample keeps the latent smooth around each encoding.
                mu_source, mu_initial, mu_driving = mu.float().chunk(3)
                z_driving = mu_driving + (z.float().chunk(3)[2] - mu_driving) * self.tp.latent_noise
                z_moved = moved_latent(mu_source, z_driving - mu_initial, self.cfg.transfer_dims)
                logits, painted = self.decoder.decode(z_moved, source)
            else:
                logits = self.decoder(z)
            kl = kl_divergence(mu.float(), logvar.float()).mean()
            rec = reconstruction_loss(self.cfg.reconstruction, logits.float(), images).mean()
            total = kl_weight * kl + weights.reconstruction * rec
            values = {"kl": kl, "reconstruction": rec}
            if conditioned and weights.motion > 0 and "motion" in batch:
                target = batch["motion"].to(self.device) * self.tp.motion_scale
                said = (mu_driving - mu_initial)[:, : target.shape[1]]
                motion = (said - target).pow(2).sum(1).mean()
                total = total + weights.motion * motion
                values["motion"] = motion
            recon = torch.sigmoid(logits)
            if conditioned and (weights.mouth > 0 or weights.mouth_painted > 0):
                region = batch["mouth"].to(self.device)
                for name, image in (("mouth", recon.float()), ("mouth_painted", painted)):
                    error = (image - images).abs()
                    error = (error.square() if self.cfg.mouth_error == "l2" else error) * region
                    values[name] = error.flatten(1).sum(1).mean()
                    total = total + getattr(weights, name) * values[name]
            if adversarial or weights.feature_matching > 0:
                fake_logit, fake_features = self.discriminator(recon)
                if adversarial:
                    gan = F.binary_cross_entropy_with_logits(
                        fake_logit.float(), torch.ones_like(fake_logit, dtype=torch.float32)
                    )
                    total = total + weights.adversarial * gan
                    values["adversarial"] = gan
                if weights.feature_matching > 0:
                    with torch.no_grad():
                        _, real_features = self.discriminator(images)
                    fm = (fake_features.float() - real_features.float()).pow(2).flatten(1).mean(1).mean()
                    total = total + weights.feature_matching * fm
                    values["feature_matching"] = fm
            if self.perceptual is not None:
                perceptual = self.perceptual({"1": recon.float()}, {"1": images})
                total = total + weights.perceptual * perceptual
                values["perceptual"] = perceptual
        out = {k: float(v.detach()) for k, v in values.items()}
        out["l1"] = float((recon.detach().float() - images).abs().mean())
        out["kl_per_dim"] = out["kl"] / self.cfg.latent
        out["total"] = float(total.detach())
        if not self.guard.accept(out["total"]):
            self.opt_vae.zero_grad(set_to_none=True)
            return out, None
        # The discriminator's gradients from the VAE step are discarded: it learns only in its own step.
        total.backward()
        self.opt_vae.step()
        self.opt_vae.zero_grad(set_to_none=True)
        self.opt_discriminator.zero_grad(set_to_none=True)
        if adversarial:
            with self._autocast():
                real_logit, _ = self.discriminator(images)
                fake_logit, _ = self.discriminator(recon.detach())
                d_loss = F.binary_cross_entropy_with_logits(
                    real_logit.float(), torch.ones_like(real_logit, dtype=torch.float32)
                ) + F.binary_cross_entropy_with_logits(
                    fake_logit.float(), torch.zeros_like(fake_logit, dtype=torch.float32)
                )
            if math.isfinite(float(d_loss.detach())):
                d_loss.backward()
                self.opt_discriminator.step()
            self.opt_discriminator.zero_grad(set_to_none=True)
            out["discriminator"] = float(d_loss.detach())
        return out, None

    def log_columns(self) -> dict[str, Any]:
        # Every loss column from the first row on, though the adversarial terms start later.
        keys = ("total", "kl", "kl_per_dim", "reconstruction", "l1", "motion", "mouth", "mouth_painted",
                "adversarial", "discriminator")  # fmt: skip
        return dict.fromkeys(keys)

    def on_log(self, row: dict[str, Any]) -> None:
        for message in self.watch.update(self.position.step, row["kl_per_dim"], row.get("discriminator")):
            warnings.warn(message, CollapseWarning, stacklevel=3)


def train(
    config: str | Path | VaeganConfig | None,
    data: Path,
    checkpoint: str | Path | None = None,
    out_dir: Path = Path("runs/vaegan"),
    steps: int | None = None,
    device: str = "auto",
    seed: int = 0,
    batch_size: int | None = None,
    num_workers: int = 0,
    log_every: int = 50,
    checkpoint_every: int = 1000,
    on_progress: ProgressCallback | None = None,
    progress_bar: bool = True,
    max_seconds: float | None = None,
    precision: str = "auto",
    checkpoints_dir: Path | None = None,
    vgg_weights: Path | None = None,
) -> Path:
    """Train (or resume from ``checkpoint``) and return the final checkpoint's path.

    ``config`` may be omitted when resuming (the checkpoint stores it); ``steps`` counts from the
    start of training. ``precision`` ``auto`` resumes in the checkpoint's own precision.
    """
    source, data_ckpt = read_resume(
        checkpoint, checkpoints_dir, ckpt.resolve_checkpoint, ckpt.read_checkpoint
    )
    if isinstance(config, VaeganConfig):
        cfg = config
    elif config is not None:
        cfg = load_config(config)
    elif data_ckpt is not None and source is not None:
        cfg = ckpt.checkpoint_config(data_ckpt, source)
    else:
        raise TrainingError("no config given; pass --config (vaegan-64, vaegan-demo or a YAML file).")
    if data_ckpt is not None and source is not None and config is not None:
        stored = ckpt.checkpoint_config(data_ckpt, source)
        if config_to_dict(stored) != config_to_dict(cfg):
            raise TrainingError(
                f"checkpoint {source} was trained with another config; "
                "resume without --config to use its own."
            )
    precision = resume_precision(precision, data_ckpt)
    trainer = VaeganTrainer(
        cfg, Path(data), Path(out_dir), device, seed, num_workers, batch_size, precision, vgg_weights
    )
    if data_ckpt is not None and source is not None:
        trainer.restore(data_ckpt, source)
    steps = cfg.train.steps if steps is None else steps
    return trainer.train_loop(steps, log_every, checkpoint_every, on_progress, progress_bar, max_seconds)
