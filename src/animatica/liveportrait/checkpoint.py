"""The LivePortrait networks read from the public weight folder, strictly.

The public ``pretrained_weights/liveportrait/`` folder holds five files: four plain state dicts in
``base_models/`` and, in ``retargeting_models/``, one dict of three state dicts (stitching, eye and
lip networks) whose keys carry the ``module.`` prefix of a ``DataParallel`` wrapper. Files are read
with ``weights_only=True``: weights from the internet are data, and must not be able to run code
when loaded. Any key that is missing, unexpected or of the wrong shape is an error naming the keys
and the file, so a folder from another model variant is refused rather than half-loaded.
"""

import pickle
import re
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from animatica.liveportrait.appearance import AppearanceFeatureExtractor
from animatica.liveportrait.layout import (
    BASE_FILES,
    RETARGETING_ENTRIES,
    RETARGETING_FILE,
    WEIGHTS_HINT,
    WeightsError,
    find_weights_dir,
)
from animatica.liveportrait.motion_extractor import MotionExtractor
from animatica.liveportrait.spade import SPADEDecoder
from animatica.liveportrait.stitching import RetargetMLP, eye_mlp, lip_mlp, stitching_mlp
from animatica.liveportrait.warping import WarpingNetwork
from animatica.state_dicts import fit_problems, strip_data_parallel


@dataclass
class LivePortraitNetworks:
    """The seven networks of one LivePortrait model, in eval mode, on one device."""

    appearance: AppearanceFeatureExtractor
    motion: MotionExtractor
    warping: WarpingNetwork
    decoder: SPADEDecoder
    stitching: RetargetMLP
    eye: RetargetMLP
    lip: RetargetMLP

    def parts(self) -> dict[str, nn.Module]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def to(self, device: torch.device | str) -> "LivePortraitNetworks":
        for module in self.parts().values():
            module.to(device)
        return self

    def render(
        self,
        feature_3d: torch.Tensor,
        x_d: torch.Tensor,
        x_s: torch.Tensor,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Warp the source volume from keypoints ``x_s`` to ``x_d`` (N, 21, 3) and decode:
        (N, 3, 512, 512) float32 in (0, 1).

        ``dtype`` bfloat16 runs the decoder alone under bf16 autocast. Everything before it stays
        float32, because bf16 costs far more there than it saves: against float32 frames on the
        parity fixture a bf16 decoder keeps ~46 dB PSNR, a bf16 warping (sampling grids in [-1, 1]
        keep ~3 significant digits, a tenth of a voxel) only ~35 dB, a bf16 motion extractor ~20 dB.
        """
        warped = self.warping(feature_3d.float(), kp_driving=x_d.float(), kp_source=x_s.float())["out"]
        on = dtype == torch.bfloat16
        with torch.autocast(warped.device.type, dtype=torch.bfloat16, enabled=on):
            return self.decoder(warped).float()


# How each network is built, in the order of the dataclass fields.
BUILDERS = {
    "appearance": AppearanceFeatureExtractor,
    "motion": MotionExtractor,
    "warping": WarpingNetwork,
    "decoder": SPADEDecoder,
    "stitching": stitching_mlp,
    "eye": eye_mlp,
    "lip": lip_mlp,
}


def build_networks() -> LivePortraitNetworks:
    """The networks with PyTorch's default initialisation (on the current default device)."""
    return LivePortraitNetworks(**{name: build() for name, build in BUILDERS.items()})


def _inference(networks: LivePortraitNetworks, device: torch.device | str) -> LivePortraitNetworks:
    for module in networks.parts().values():
        module.eval().requires_grad_(False)
    return networks.to(device)


def random_networks(seed: int = 0, device: torch.device | str = "cpu") -> LivePortraitNetworks:
    """Networks of the public shapes with random weights, for benchmarks and tests that need no
    real output; the same seed gives the same weights. The global random state is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        networks = build_networks()
    return _inference(networks, device)


def _unreadable(path: Path, exc: Exception) -> WeightsError:
    """The error for a file torch cannot load, without torch's advice on loading it unsafely."""
    text = str(exc).strip()
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if isinstance(exc, pickle.UnpicklingError) and refused:
        return WeightsError(
            f"LivePortrait weight file {path} holds objects other than tensors ({refused.group(1)}), "
            "which could run code when loaded; refused (use the public weight files)"
        )
    detail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else text
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    reason = lines[0][:200] if lines else type(exc).__name__
    return WeightsError(
        f"LivePortrait weight file {path} cannot be read (truncated, corrupt or not a PyTorch weight file): "
        f"{reason}"
    )


def read_weights(path: Path) -> dict:
    """A weight file's top-level dict, read on the CPU without executing any pickled code."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WeightsError(f"LivePortrait weight file {path} cannot be read: {exc.strerror}") from None
    if size == 0:
        raise WeightsError(f"LivePortrait weight file {path} is empty; {WEIGHTS_HINT}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated, foreign or code-carrying files
        raise _unreadable(path, exc) from None
    if not isinstance(data, dict):
        raise WeightsError(f"LivePortrait weight file {path} holds a {type(data).__name__}, not a state dict")
    return data


def load_state_strict(module: nn.Module, state: object, what: str, source: str) -> None:
    """Load ``state`` into ``module``; any missing, unexpected, mis-shaped or non-tensor key is an
    error naming ``what`` (the network) and ``source`` (the file, and entry if any)."""
    if not isinstance(state, dict):
        raise WeightsError(
            f"LivePortrait weights {source}: the {what} is a {type(state).__name__}, not a state dict"
        )
    problems = fit_problems(module, state, "file vs network")
    if problems:
        raise WeightsError(
            f"LivePortrait weights {source}: the {what} does not fit the network ({'; '.join(problems)}); "
            "use the unmodified files of the public human model"
        )
    module.load_state_dict(state, strict=True)


def load_networks(path: str | Path, device: torch.device | str = "cpu") -> LivePortraitNetworks:
    """The seven networks with the weights of the folder at ``path`` (see ``find_weights_dir``).

    Each network is built just before its file is read, the small retargeting file first, so that
    a bad file is reported before the large networks are allocated.
    """
    folder = find_weights_dir(path)
    modules: dict[str, nn.Module] = {}
    file = folder / RETARGETING_FILE
    retargeting = read_weights(file)
    absent = [entry for entry in RETARGETING_ENTRIES.values() if entry not in retargeting]
    if absent:
        found = ", ".join(map(str, retargeting)) or "nothing"
        raise WeightsError(
            f"LivePortrait weights {file} has no {', '.join(absent)} entry (it holds: {found})"
        )
    for name, entry in RETARGETING_ENTRIES.items():
        modules[name] = BUILDERS[name]()
        state = retargeting[entry]
        if isinstance(state, dict):
            state = strip_data_parallel(state)
        load_state_strict(modules[name], state, f"{name} network", f"{file} [{entry}]")
    for name, relative in BASE_FILES.items():
        file = folder / relative
        state = read_weights(file)
        modules[name] = BUILDERS[name]()
        load_state_strict(modules[name], state, f"{name} network", str(file))
        del state
    return _inference(LivePortraitNetworks(**modules), device)
