"""The FOMM networks a config describes, and the state-dict keys and shapes they have.

Shapes come from the networks themselves, built on PyTorch's meta device: every parameter and
buffer gets its shape and dtype but no storage, so describing a vox-256 config (about 62 million
values) costs tens of milliseconds and no memory. A checkpoint can then be checked against a config,
or matched to a built-in config, without allocating anything, and the shapes cannot drift from the
layers that will load the weights.
"""

import functools
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from animatica.fomm.config import (
    BUILTIN_CONFIGS,
    FommConfig,
    discriminator_kwargs,
    generator_kwargs,
    kp_detector_kwargs,
    load_config,
)
from animatica.fomm.discriminator import MultiScaleDiscriminator
from animatica.fomm.generator import OcclusionAwareGenerator
from animatica.fomm.keypoint_detector import KPDetector

Shapes = dict[str, tuple[int, ...]]

# Checkpoint entries in the order the public state-dict listings use.
NETWORKS = ("kp_detector", "generator", "discriminator")
# The networks animation needs; matching a checkpoint to a config looks at these only.
_INFERENCE_PREFIXES = ("generator.", "kp_detector.")


def build_networks(cfg: FommConfig, device: torch.device | str = "cpu") -> dict[str, nn.Module]:
    """The keypoint detector, generator and discriminator of ``cfg``, keyed by checkpoint entry."""
    with torch.device(device):
        return {
            "kp_detector": KPDetector(**kp_detector_kwargs(cfg)),
            "generator": OcclusionAwareGenerator(**generator_kwargs(cfg)),
            "discriminator": MultiScaleDiscriminator(**discriminator_kwargs(cfg)),
        }


def expected_shapes(cfg: FommConfig) -> Shapes:
    """Every state-dict key the config implies, prefixed by network, in registration order."""
    networks = build_networks(cfg, device="meta")
    return {
        f"{name}.{key}": tuple(tensor.shape)
        for name in NETWORKS
        for key, tensor in networks[name].state_dict().items()
    }


def match_builtin(shapes: Mapping[str, Sequence[int]]) -> list[str]:
    """Built-in configs whose generator and keypoint detector have exactly these keys and shapes.

    Keys of other entries (discriminator, optimisers) are ignored: published inference checkpoints
    do not have them, and the discriminator does not affect animation.
    """
    wanted = {key: tuple(shape) for key, shape in shapes.items() if key.startswith(_INFERENCE_PREFIXES)}
    return [name for name in BUILTIN_CONFIGS if _builtin_inference_shapes(name) == wanted]


@functools.cache
def _builtin_inference_shapes(name: str) -> Shapes:
    everything = expected_shapes(load_config(name))
    return {key: shape for key, shape in everything.items() if key.startswith(_INFERENCE_PREFIXES)}
