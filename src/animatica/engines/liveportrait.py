"""The ``liveportrait`` engine: LivePortrait's implicit-keypoint animation, 256x256 in, 512x512 out.

Per job, ``prepare`` runs the appearance extractor F on the source (the 32x16x64x64 feature
volume), the motion extractor M on the source and on the initial driving frame, and the motion
maths that depend only on them (the source keypoints x_s, the initial frame's keypoints and the
expression-friendly multiplier; ``liveportrait.motion.prepare_motion``). ``animate`` then runs, a
batch of driving frames at a time, M → motion maths → stitching → warping W → decoder G.

Output frames are 8-bit as the public implementation writes them: clipped to [0, 1], times 255,
**truncated** (not rounded), so that they compare like with like with its frames; rounding would
make every frame brighter by half a grey level on average.

Eye and lip retargeting take their targets from each driving frame's own 68-point landmarks (the
face toolkit's dlib predictor; see ``motion.eye_open_ratios``), the source's openness from the
source's. A driving frame in which no face is found gets no retargeting delta. As in the public
implementation, relative motion with retargeting keeps only the eye / lip movement (on the source
keypoints); absolute motion adds it to the driving keypoints.

The engine is stateless from frame to frame (``warmup_frames`` 0). Its state is the feature volume
(8 MB) and a few keypoint tensors, saved as plain CPU tensors (``state_to_dict``), so segments on
other workers start from the same prepared source.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from animatica.device import precision_name, resolve_device, resolve_precision
from animatica.engines.base import StateError, check_state_dict
from animatica.liveportrait import motion
from animatica.liveportrait.checkpoint import LivePortraitNetworks, load_networks
from animatica.liveportrait.layout import resolve_weights

FRAME_SIZE = (256, 256)
OUTPUT_SIZE = (512, 512)
STATE_VERSION = 1


@dataclass
class LoadedNetworks:
    networks: LivePortraitNetworks
    device: torch.device
    dtype: torch.dtype  # of the decoder (`LivePortraitNetworks.render`); everything else is float32
    folder: Path
    accelerated: bool


@lru_cache(maxsize=1)  # 130 M parameters: one model per process
def _load(folder: str, device: str, precision: str, accelerate: bool) -> LoadedNetworks:
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    networks = load_networks(folder, device=dev)
    if accelerate:
        from animatica.liveportrait.fast import accelerate as speed_up

        networks = speed_up(networks)
    return LoadedNetworks(networks, dev, dtype, Path(folder), accelerate)


@dataclass
class Openness:
    """How open a face's eyes and mouth are (``motion.eye_open_ratios`` / ``lip_open_ratio``)."""

    eyes: tuple[float, float]
    lip: float


def measure_openness(image: np.ndarray, thorough: bool = False) -> Openness | None:
    """The openness of the largest face in ``image`` (RGB uint8), or None when no face is found."""
    from animatica.face.analyzer import get_analyzer

    analyzer = get_analyzer()
    faces = analyzer.detect(image, thorough=thorough)
    if not faces:
        return None
    points = analyzer.landmarks(image, faces[0])
    eyes = motion.eye_open_ratios(points)
    return Openness((float(eyes[0]), float(eyes[1])), motion.lip_open_ratio(points))


@dataclass
class LivePortraitState:
    feature_3d: torch.Tensor  # (1, 32, 16, 64, 64) appearance volume of the source
    motion: motion.SourceMotion
    source_openness: Openness | None  # measured only when retargeting is on


class LivePortraitEngine:
    name = "liveportrait"
    frame_size: tuple[int, int] | None = FRAME_SIZE  # inputs; outputs are OUTPUT_SIZE
    output_size = OUTPUT_SIZE
    warmup_frames = 0  # each frame depends only on its own driving frame and the prepared state

    def __init__(self, loaded: LoadedNetworks, options: motion.MotionOptions):
        self.loaded = loaded
        self.options = options
        nets = loaded.networks
        self._small = motion.Networks(nets.stitching, nets.eye, nets.lip)

    @classmethod
    def load(
        cls,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        precision: str = "auto",
        relative: bool = True,
        region: str = "all",
        stitching: bool = True,
        driving_multiplier: float = 1.0,
        eye_retargeting: bool = False,
        lip_retargeting: bool = False,
        expression_friendly: bool = True,
        accelerate: bool = True,
        checkpoints_dir: Path | None = None,
    ) -> "LivePortraitEngine":
        """The engine on the weight folder ``checkpoint`` (a path, or a name under ``checkpoints_dir``).

        The networks are loaded once per process (for the last folder, device and precision asked).
        ``accelerate`` swaps in the speed path (``liveportrait.fast``); its results agree with the
        plain networks within the parity tolerances.
        """
        options = motion.MotionOptions(
            relative=relative,
            region=region,
            expression_friendly=expression_friendly,
            stitching=stitching,
            driving_multiplier=float(driving_multiplier),
            eye_retargeting=eye_retargeting,
            lip_retargeting=lip_retargeting,
        )
        folder = resolve_weights(checkpoint, None if checkpoints_dir is None else Path(checkpoints_dir))
        return cls(_load(str(folder.resolve()), device, precision, accelerate), options)

    @property
    def device(self) -> str:
        return str(self.loaded.device)

    @property
    def precision(self) -> str:
        return precision_name(self.loaded.dtype)

    def _to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1] on the engine's device."""
        if frames.ndim != 4 or frames.shape[1:] != (*FRAME_SIZE, 3):
            raise ValueError(f"expected (N, {FRAME_SIZE[0]}, {FRAME_SIZE[1]}, 3) frames, got {frames.shape}")
        t = torch.from_numpy(np.require(frames, dtype=np.uint8, requirements=["C", "W"]))
        return t.to(self.loaded.device).permute(0, 3, 1, 2).float().div_(255.0)

    def _keypoint_info(self, images: torch.Tensor) -> motion.KeypointInfo:
        return motion.keypoint_info(self.loaded.networks.motion(images))

    @property
    def _retargeting(self) -> bool:
        return self.options.eye_retargeting or self.options.lip_retargeting

    @torch.inference_mode()
    def prepare(self, source: np.ndarray, initial_driving: np.ndarray) -> LivePortraitState:
        nets = self.loaded.networks
        src = self._to_tensor(source[None])
        source_info = self._keypoint_info(src)
        initial_info = self._keypoint_info(self._to_tensor(initial_driving[None]))
        feature_3d = nets.appearance(src)
        prepared = motion.prepare_motion(source_info, initial_info, self.options)
        openness = None
        if self._retargeting:
            openness = measure_openness(source, thorough=True)
            if openness is None:
                from animatica.face.analyzer import NoFaceError

                raise NoFaceError(
                    "No face was found in the source picture, so eye and lip retargeting have nothing "
                    "to measure; use a photo with a clearly visible face or turn retargeting off."
                )
        return LivePortraitState(feature_3d, prepared, openness)

    def _ratios(
        self, state: LivePortraitState, driving: np.ndarray
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The retargeting networks' ratio inputs for each driving frame (NaN rows: no face found)."""
        if not self._retargeting or state.source_openness is None:
            return None, None
        eyes, lips = [], []
        for frame in driving:
            found = measure_openness(frame)
            eyes.append(float("nan") if found is None else float(np.mean(found.eyes)))
            lips.append(float("nan") if found is None else found.lip)
        source = state.source_openness
        eye_ratios = motion.combined_eye_ratios(source.eyes, eyes).to(self.loaded.device)
        lip_ratios = motion.combined_lip_ratios(source.lip, lips).to(self.loaded.device)
        return eye_ratios, lip_ratios

    @torch.inference_mode()
    def driving_keypoints(self, state: LivePortraitState, driving: np.ndarray) -> torch.Tensor:
        """The keypoints (N, 21, 3) the warping module receives for a chunk of driving frames."""
        info = self._keypoint_info(self._to_tensor(driving))
        eye_ratios, lip_ratios = self._ratios(state, driving)
        return motion.drive(state.motion, info, self.options, self._small, eye_ratios, lip_ratios)

    @torch.inference_mode()
    def render(self, state: LivePortraitState, x_d: torch.Tensor) -> torch.Tensor:
        """Warp the source volume to the keypoints x_d (N, 21, 3) and decode: (N, 3, 512, 512) in (0, 1)."""
        x_s = state.motion.x_s.expand_as(x_d)
        return self.loaded.networks.render(state.feature_3d, x_d, x_s, self.loaded.dtype)

    def animate(self, state: LivePortraitState, driving: np.ndarray) -> np.ndarray:
        image = self.render(state, self.driving_keypoints(state, driving))
        return to_uint8(image)

    def preload(self) -> None:
        """Nothing more to load: ``load`` has read the weights (once per process)."""

    def warm_up(self, state: LivePortraitState, driving: np.ndarray) -> None:
        """Nothing to do: no state carries from one frame to the next."""

    def state_to_dict(self, state: LivePortraitState) -> dict[str, Any]:
        openness = state.source_openness
        return {
            "engine": self.name,
            "version": STATE_VERSION,
            "precision": self.precision,
            "options": self.options.to_dict(),
            "feature_3d": state.feature_3d.detach().to("cpu", copy=True).clone(),
            "motion": state.motion.to_dict(),
            "source_openness": None
            if openness is None
            else {"eyes": [float(v) for v in openness.eyes], "lip": float(openness.lip)},
        }

    def state_from_dict(self, data: dict[str, Any]) -> LivePortraitState:
        d = check_state_dict(data, self.name, STATE_VERSION)
        if d.get("precision") != self.precision:
            raise StateError(
                f"the saved liveportrait state was computed in {d.get('precision')!r}; "
                f"this worker runs {self.precision!r}"
            )
        if d.get("options") != self.options.to_dict():
            raise StateError("the saved liveportrait state was prepared with other motion options")
        device = self.loaded.device
        try:
            feature_3d = d["feature_3d"]
            if not isinstance(feature_3d, torch.Tensor):
                raise TypeError("feature_3d is not a tensor")
            openness = d["source_openness"]
            return LivePortraitState(
                feature_3d.to(device, copy=True),
                motion.SourceMotion.from_dict(d["motion"], device),
                None if openness is None else Openness(tuple(openness["eyes"]), float(openness["lip"])),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise StateError(f"the saved liveportrait state is incomplete or malformed ({exc!r})") from exc


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float -> (N, H, W, 3) uint8 as the public implementation: clip, × 255, truncate."""
    out = image.clamp(0, 1).mul(255).to(torch.uint8)  # float -> uint8 truncates toward zero
    return out.permute(0, 2, 3, 1).contiguous().cpu().numpy()
