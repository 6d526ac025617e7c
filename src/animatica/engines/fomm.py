"""The ``fomm`` engine: First Order Motion Model animation from a public or trained checkpoint.

Per job, ``prepare`` computes the source keypoints, the generator's source encoding and the
keypoints of the initial driving frame (relative motion is measured from it). ``animate`` then
runs only the driving side: keypoints of each driving frame, their normalisation, dense motion
and decoding, a batch of frames at a time.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from animatica.device import precision_name, resolve_device, resolve_precision
from animatica.fomm import config as fomm_config
from animatica.fomm.checkpoint import (
    config_for_checkpoint,
    load_state_strict,
    read_checkpoint,
    resolve_checkpoint,
)
from animatica.fomm.generator import EncodedSource, OcclusionAwareGenerator
from animatica.fomm.keypoint_detector import Keypoints, KPDetector
from animatica.fomm.motion import movement_scale, normalize_kp
from animatica.settings import get_settings


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
    checkpoint: str, config: str | None, device: str, precision: str, optimize: bool = True
) -> Networks:
    """Build and load the networks once per (checkpoint, config, device, precision) in this process."""
    path = resolve_checkpoint(checkpoint)
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


class FommEngine:
    name = "fomm"

    def __init__(self, networks: Networks, relative: bool = True, adapt_scale: bool = False):
        self.networks = networks
        self.relative = relative
        self.adapt_scale = adapt_scale
        self.frame_size: tuple[int, int] | None = fomm_config.frame_size(networks.config)
        threads = get_settings().torch_threads
        if threads > 0:
            torch.set_num_threads(threads)

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
    ) -> "FommEngine":
        networks = load_networks(
            str(checkpoint), None if config is None else str(config), device, precision, optimize
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
