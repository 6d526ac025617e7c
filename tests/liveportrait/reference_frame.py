"""Driving frame t1 of the reference run, through Animatica's F, W and G on name-derived weights.

A full-size W + G pass costs several seconds on a CPU, so the warping and the decoder tests share
one: each stage is computed once per session and weight folder. The networks are built here from
the weight files rather than taken from a shared fixture, so that a test which swaps modules of
shared networks in place (the speed path) cannot change what these tests check.
"""

from pathlib import Path

import numpy as np
import torch

from animatica.liveportrait.appearance import AppearanceFeatureExtractor
from animatica.liveportrait.spade import SPADEDecoder
from animatica.liveportrait.warping import WarpingNetwork

_warped: dict[Path, dict[str, torch.Tensor]] = {}
_decoded: dict[Path, torch.Tensor] = {}


def _load(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return module.eval().requires_grad_(False)


def warped_t1(lp_dir: Path, parity: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """W's outputs for frame t1: the source volume moved from ``source/x_s`` to ``t1/x_d_i_new``."""
    if lp_dir not in _warped:
        base = lp_dir / "base_models"
        appearance = _load(AppearanceFeatureExtractor(), base / "appearance_feature_extractor.pth")
        warping = _load(WarpingNetwork(), base / "warping_module.pth")
        with torch.inference_mode():
            feature_3d = appearance(torch.from_numpy(parity["inputs/source"]))
            _warped[lp_dir] = warping(
                feature_3d,
                torch.from_numpy(parity["t1/x_d_i_new"]),
                torch.from_numpy(parity["source/x_s"]),
            )
    return _warped[lp_dir]


def decoded_t1(lp_dir: Path, parity: dict[str, np.ndarray]) -> torch.Tensor:
    """G(W(...)) for frame t1, (1, 3, 512, 512)."""
    if lp_dir not in _decoded:
        decoder = _load(SPADEDecoder(), lp_dir / "base_models" / "spade_generator.pth")
        with torch.inference_mode():
            _decoded[lp_dir] = decoder(warped_t1(lp_dir, parity)["out"])
    return _decoded[lp_dir]
