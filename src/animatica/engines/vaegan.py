"""The ``vaegan`` engine: animation by latent differences in a VAE+GAN's latent space.

``prepare`` encodes the source and the initial driving frame (posterior means: animation wants
the encoder's best guess, not a sample). ``animate`` encodes each driving frame and decodes
``z_source + strength * (z_driving - z_initial)``. Every frame is measured from the initial
driving frame, not from its predecessor: a running sum of frame-to-frame differences
accumulates every frame's encoding error and drifts over a long video, while this form's error
does not grow with time, and frames are independent (segments, any order).

With ``keep_detail`` the decoded change is added to the source photo instead of replacing it
(``source + decode(z) - decode(z_source)``): the VAE's reconstruction is blurry, but where the
driving motion changes nothing the photo's own pixels come through unchanged.

A model with a decoder conditioned on the photo (``condition: source``, the shipped demo) decodes
``decode(z, photo)``: the photo's pixels and features carry the identity and the latent difference
only the motion, so the state keeps the photo too.

Face crops in and the feathered paste-back into the full photo are the pipeline's
(``face.portrait_crop``); the engine sees square crops at its model's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from animatica.device import precision_name, resolve_device, resolve_precision
from animatica.engines.base import StateError, check_state_dict
from animatica.errors import AnimaticaError
from animatica.vaegan.checkpoint import (
    checkpoint_config,
    load_state_strict,
    read_checkpoint,
    resolve_checkpoint,
)
from animatica.vaegan.config import VaeganConfig
from animatica.vaegan.decoder import Decoder, moved_latent
from animatica.vaegan.encoder import Encoder

DEFAULT_CHECKPOINT = "vaegan-demo"
STATE_VERSION = 2


@dataclass
class Networks:
    encoder: Encoder
    decoder: Decoder
    config: VaeganConfig
    device: torch.device
    dtype: torch.dtype
    source: Path


@lru_cache(maxsize=2)
def load_networks(
    checkpoint: str, device: str, precision: str, checkpoints_dir: Path | None = None
) -> Networks:
    """Read and build the networks once per (checkpoint, device, precision) in this process."""
    path = resolve_checkpoint(checkpoint, checkpoints_dir)
    data = read_checkpoint(path)
    cfg = checkpoint_config(data, path)
    encoder, decoder = Encoder(cfg), Decoder(cfg)
    load_state_strict(encoder, data["encoder"], "encoder", path)
    load_state_strict(decoder, data["decoder"], "decoder", path)
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    return Networks(encoder.eval().to(dev), decoder.eval().to(dev), cfg, dev, dtype, path)


@dataclass
class VaeganState:
    z_source: torch.Tensor  # (1, latent)
    z_initial: torch.Tensor  # (1, latent)
    base: torch.Tensor | None  # keep_detail: source - decode(z_source), (1, 3, S, S); else None
    source: torch.Tensor | None = None  # a decoder conditioned on the photo: it, (1, 3, S, S)


class VaeganEngine:
    name = "vaegan"
    warmup_frames = 0  # each frame depends only on its own driving frame and the prepared state

    def __init__(self, networks: Networks, strength: float = 1.0, keep_detail: bool = False):
        if not np.isfinite(strength):
            raise AnimaticaError(f"--strength must be a finite number, got {strength}")
        self.networks = networks
        self.strength = float(strength)
        self.keep_detail = bool(keep_detail)
        self.frame_size: tuple[int, int] | None = networks.config.frame_size

    @classmethod
    def load(
        cls,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        precision: str = "auto",
        strength: float = 1.0,
        keep_detail: bool = False,
        checkpoints_dir: Path | None = None,
    ) -> VaeganEngine:
        """The engine on ``checkpoint`` (a path or a name; the shipped ``vaegan-demo`` when None)."""
        networks = load_networks(
            str(checkpoint or DEFAULT_CHECKPOINT),
            device,
            precision,
            None if checkpoints_dir is None else Path(checkpoints_dir),
        )
        return cls(networks, strength=strength, keep_detail=keep_detail)

    @property
    def precision(self) -> str:
        return precision_name(self.networks.dtype)

    def _to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.require(frames, requirements=["C", "W"])).to(self.networks.device)
        return t.permute(0, 3, 1, 2).float().div_(255.0)

    def _autocast(self) -> torch.autocast:
        dev = self.networks.device.type
        return torch.autocast(dev, dtype=torch.bfloat16, enabled=self.networks.dtype == torch.bfloat16)

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """Posterior means ``(N, latent)`` of ``(N, S, S, 3)`` uint8 frames."""
        with torch.inference_mode(), self._autocast():
            return self.networks.encoder(self._to_tensor(frames))[0].float()

    @property
    def conditioned(self) -> bool:
        """Whether the decoder needs the source photo besides the latent (``condition: source``)."""
        return self.networks.config.condition == "source"

    def decode(self, z: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(N, 3, S, S)`` in [0, 1] (float32) of latents ``(N, latent)``; ``source``
        ``(1 or N, 3, S, S)`` in [0, 1] for a conditioned decoder."""
        if source is not None:
            source = source.expand(z.shape[0], -1, -1, -1)
        with torch.inference_mode(), self._autocast():
            return torch.sigmoid(self.networks.decoder(z, source).float())

    @staticmethod
    def to_uint8(images: torch.Tensor) -> np.ndarray:
        out = images.clamp(0, 1).mul(255).round().to(torch.uint8)
        return out.permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def prepare(self, source: np.ndarray, initial_driving: np.ndarray) -> VaeganState:
        z = self.encode(np.stack([source, initial_driving]))
        photo = self._to_tensor(source[None]) if self.conditioned else None
        base = None
        if self.keep_detail:
            base = self._to_tensor(source[None]) - self.decode(z[:1], photo)
        return VaeganState(z[:1].clone(), z[1:].clone(), base, photo)

    def animate(self, state: VaeganState, driving: np.ndarray) -> np.ndarray:
        change = self.strength * (self.encode(driving) - state.z_initial)
        z = moved_latent(state.z_source, change, self.networks.config.transfer_dims)
        images = self.decode(z, state.source)
        if state.base is not None:
            images = images + state.base
        return self.to_uint8(images)

    def preload(self) -> None:
        """Nothing more to load: ``load`` has read the weights (once per process, ``load_networks``)."""

    def warm_up(self, state: VaeganState, driving: np.ndarray) -> None:
        """Nothing to do: no state carries from one frame to the next."""

    def state_to_dict(self, state: VaeganState) -> dict[str, Any]:
        return {
            "engine": self.name,
            "version": STATE_VERSION,
            "precision": self.precision,
            "z_source": state.z_source.detach().cpu().clone(),
            "z_initial": state.z_initial.detach().cpu().clone(),
            "base": None if state.base is None else state.base.detach().cpu().clone(),
            "source": None if state.source is None else state.source.detach().cpu().clone(),
        }

    def state_from_dict(self, data: dict[str, Any]) -> VaeganState:
        d = check_state_dict(data, self.name, STATE_VERSION)
        if d.get("precision") != self.precision:
            raise StateError(
                f"the saved vaegan state was computed in {d.get('precision')!r}; "
                f"this worker runs {self.precision!r}"
            )
        latent = self.networks.config.latent
        try:
            zs, z0, base, photo = d["z_source"], d["z_initial"], d["base"], d["source"]
            for t in (zs, z0):
                if not isinstance(t, torch.Tensor) or tuple(t.shape) != (1, latent):
                    raise TypeError(f"expected a (1, {latent}) latent tensor")
            if (base is None) == self.keep_detail or (
                base is not None and not isinstance(base, torch.Tensor)
            ):
                raise TypeError("the state was prepared with another keep_detail setting")
            if (photo is None) == self.conditioned or (
                photo is not None and not isinstance(photo, torch.Tensor)
            ):
                raise TypeError("the state was prepared for a model with another decoder")
        except (KeyError, TypeError) as exc:
            raise StateError(
                f"the saved vaegan state is incomplete or does not fit this model ({exc})"
            ) from exc
        device = self.networks.device
        return VaeganState(
            zs.to(device),
            z0.to(device),
            None if base is None else base.to(device),
            None if photo is None else photo.to(device),
        )
