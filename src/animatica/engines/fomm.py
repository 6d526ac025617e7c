"""The ``fomm`` engine: First Order Motion Model animation from a public or trained checkpoint.

Per job, ``prepare`` computes the source keypoints, the generator's source encoding and the
keypoints of the initial driving frame (relative motion is measured from it). ``animate`` then
runs only the driving side: keypoints of each driving frame, their normalisation, dense motion
and decoding, a batch of frames at a time.

The engine is stateless from frame to frame (``warmup_frames`` 0), and its prepared state is a
handful of tensors: ``state_to_dict`` saves them on the CPU at their own dtype, so a state
loaded on another worker with the same weights and precision animates exactly as the original.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from animatica.device import precision_name, resolve_device, resolve_precision
from animatica.engines.base import StateError, check_state_dict
from animatica.fomm import config as fomm_config
from animatica.fomm.checkpoint import (
    config_for_checkpoint,
    load_state_strict,
    read_checkpoint,
    resolve_checkpoint,
)
from animatica.fomm.dense_motion import MotionSource
from animatica.fomm.generator import EncodedSource, OcclusionAwareGenerator
from animatica.fomm.keypoint_detector import Keypoints, KPDetector
from animatica.fomm.motion import movement_scale, normalize_kp


@dataclass
class Networks:
    kp_detector: KPDetector
    generator: OcclusionAwareGenerator
    config: fomm_config.FommConfig
    device: torch.device
    dtype: torch.dtype
    source: Path


@lru_cache(maxsize=2)
def load_networks(
    checkpoint: str,
    config: str | None,
    device: str,
    precision: str,
    optimize: bool = True,
    checkpoints_dir: Path | None = None,
) -> Networks:
    """Build and load the networks once per (checkpoint, config, device, precision) in this process.

    A bare checkpoint name is looked up among the shipped ones and in ``checkpoints_dir``.
    """
    path = resolve_checkpoint(checkpoint, checkpoints_dir)
    data = read_checkpoint(path)
    cfg = config_for_checkpoint(data, path, config)
    kp_detector = KPDetector(**fomm_config.kp_detector_kwargs(cfg))
    generator = OcclusionAwareGenerator(**fomm_config.generator_kwargs(cfg))
    load_state_strict(kp_detector, data["kp_detector"], "keypoint detector", path)
    load_state_strict(generator, data["generator"], "generator", path)
    del data
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    kp_detector.eval().to(dev)
    generator.eval().to(dev)
    if optimize:
        from animatica.fomm.fast import optimize_for_inference

        kp_detector, generator = optimize_for_inference(kp_detector, generator)
    return Networks(kp_detector, generator, cfg, dev, dtype, path)


@dataclass
class FommState:
    encoded: EncodedSource
    kp_source: Keypoints
    kp_initial: Keypoints
    scale: torch.Tensor | None  # movement-scale factor, when adapt_scale is on


STATE_VERSION = 1  # of ``state_to_dict``'s layout


class FommEngine:
    name = "fomm"
    warmup_frames = 0  # each frame depends only on its own driving frame and the prepared state

    def __init__(self, networks: Networks, relative: bool = True, adapt_scale: bool = False):
        self.networks = networks
        self.relative = relative
        self.adapt_scale = adapt_scale
        self.frame_size: tuple[int, int] | None = fomm_config.frame_size(networks.config)

    @classmethod
    def load(
        cls,
        checkpoint: str | Path,
        config: str | Path | None = None,
        device: str = "auto",
        precision: str = "auto",
        relative: bool = True,
        adapt_scale: bool = False,
        optimize: bool = True,
        checkpoints_dir: Path | None = None,
    ) -> "FommEngine":
        """The engine on ``checkpoint``: a path, or a name among the shipped ones and in ``checkpoints_dir``.

        The process's torch thread count is left as its starter set it (``animatica.device.use_threads``).
        """
        networks = load_networks(
            str(checkpoint),
            None if config is None else str(config),
            device,
            precision,
            optimize,
            None if checkpoints_dir is None else Path(checkpoints_dir),
        )
        return cls(networks, relative=relative, adapt_scale=adapt_scale)

    @property
    def precision(self) -> str:
        return precision_name(self.networks.dtype)

    @property
    def device(self) -> str:
        return str(self.networks.device)

    def _to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [0, 1] on the engine's device."""
        t = torch.from_numpy(np.require(frames, requirements=["C", "W"])).to(self.networks.device)
        return t.permute(0, 3, 1, 2).float().div_(255.0)

    def _autocast(self):
        dev = self.networks.device.type
        return torch.autocast(dev, dtype=torch.bfloat16, enabled=self.networks.dtype == torch.bfloat16)

    @torch.inference_mode()
    def prepare(self, source: np.ndarray, initial_driving: np.ndarray) -> FommState:
        nets = self.networks
        with self._autocast():
            src = self._to_tensor(source[None])
            kp_source = nets.kp_detector(src)
            kp_initial = nets.kp_detector(self._to_tensor(initial_driving[None]))
            encoded = nets.generator.encode(src, kp_source)
        scale = movement_scale(kp_source, kp_initial) if self.adapt_scale and self.relative else None
        return FommState(encoded, kp_source, kp_initial, scale)

    @torch.inference_mode()
    def animate(self, state: FommState, driving: np.ndarray) -> np.ndarray:
        nets = self.networks
        with self._autocast():
            kp_driving = nets.kp_detector(self._to_tensor(driving))
            kp = normalize_kp(
                state.kp_source,
                kp_driving,
                state.kp_initial,
                adapt_movement_scale=self.adapt_scale,
                use_relative_movement=self.relative,
                use_relative_jacobian=self.relative,  # as the reference's demo: jacobians follow the mode
                scale=state.scale,
            )
            prediction = nets.generator.decode(state.encoded, kp, with_deformed=False)["prediction"]
        out = prediction.float().clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        return out.permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def preload(self) -> None:
        """Nothing more to load: ``load`` has read the weights (once per process, ``load_networks``)."""

    def warm_up(self, state: FommState, driving: np.ndarray) -> None:
        """Nothing to do: no state carries from one frame to the next."""

    def state_to_dict(self, state: FommState) -> dict[str, Any]:
        encoded = state.encoded
        motion = encoded.motion
        return {
            "engine": self.name,
            "version": STATE_VERSION,
            "precision": self.precision,
            "image": _cpu(encoded.image),
            "features": _cpu(encoded.features),
            "motion": None
            if motion is None
            else {"image": _cpu(motion.image), "kp": _kp_cpu(motion.kp), "heatmaps": _cpu(motion.heatmaps)},
            "kp_source": _kp_cpu(state.kp_source),
            "kp_initial": _kp_cpu(state.kp_initial),
            "scale": None if state.scale is None else _cpu(state.scale),
        }

    def state_from_dict(self, data: dict[str, Any]) -> FommState:
        d = check_state_dict(data, self.name, STATE_VERSION)
        if d.get("precision") != self.precision:
            raise StateError(
                f"the saved fomm state was computed in {d.get('precision')!r}; "
                f"this worker runs {self.precision!r}"
            )
        device = self.networks.device
        try:
            motion = d["motion"]
            encoded = EncodedSource(
                image=_on(d["image"], device),
                features=_on(d["features"], device),
                motion=None
                if motion is None
                else MotionSource(
                    image=_on(motion["image"], device),
                    kp=_kp_on(motion["kp"], device),
                    heatmaps=_on(motion["heatmaps"], device),
                ),
            )
            scale = None if d["scale"] is None else _on(d["scale"], device)
            return FommState(encoded, _kp_on(d["kp_source"], device), _kp_on(d["kp_initial"], device), scale)
        except (KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"the saved fomm state is incomplete or malformed ({exc!r})") from exc


def _cpu(t: torch.Tensor) -> torch.Tensor:
    """A plain CPU copy (tensors made under inference mode cannot be saved as they are)."""
    return t.detach().to("cpu", copy=True).clone()


def _kp_cpu(kp: Keypoints) -> dict[str, torch.Tensor]:
    return {str(k): _cpu(v) for k, v in kp.items()}


def _on(t: Any, device: torch.device) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a tensor, got {type(t).__name__}")
    return t.to(device, copy=True)


def _kp_on(kp: Any, device: torch.device) -> Keypoints:
    if not isinstance(kp, dict):
        raise TypeError(f"expected keypoints as a dict, got {type(kp).__name__}")
    return {str(k): _on(v, device) for k, v in kp.items()}
