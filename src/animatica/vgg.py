"""VGG16/VGG19 convolutional trunks that load torchvision's ImageNet weights from a local file.

Both the trainer's perceptual loss and style transfer compare VGG activations, and those only mean
something with the ImageNet weights, which cannot be downloaded here: the operator names a file such
as ``vgg19-dcbb9e9d.pth`` or ``vgg16-397923af.pth``. The trunk is laid out exactly like torchvision's
``features`` so those tensors load as they are, without torchvision itself; the classifier in the
file is ignored and only the layers up to the deepest one a caller asks for are built, so a loss
that stops at ``relu5_1`` neither loads nor runs the rest.

Layers are named as in the papers: ``conv{block}_{n}``, ``relu{block}_{n}``, ``pool{block}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from animatica.errors import CheckpointError

# torchvision's ``features``: output channels per 3x3 convolution, "M" for a 2x2 pooling.
LAYOUTS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (
        *(64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"),
        *(512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
    ),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_WHICH_FILE = "pass torchvision's vgg19-*.pth or vgg16-*.pth"


def layer_names(arch: str) -> list[str]:
    """The name of every module of ``features`` in order, so ``layer_names(a).index(n)`` is its index."""
    names: list[str] = []
    block, n = 1, 0
    for item in _layout(arch):
        if item == "M":
            names.append(f"pool{block}")
            block, n = block + 1, 0
        else:
            n += 1
            names += [f"conv{block}_{n}", f"relu{block}_{n}"]
    return names


def detect_arch(state: dict) -> str | None:
    """``vgg16`` or ``vgg19`` from the layer indices a torchvision state dict holds; None if neither.

    The two part ways in the third block: VGG19 has a fourth convolution at ``features.16`` where VGG16
    pools and then convolves at ``features.17``. A file cut short after that point (callers only load
    up to the layers they use) is still recognised; one with layers at indices neither has (batch-norm
    variants, VGG11/13) is not.
    """
    indices = {key.split(".")[1] for key in state if isinstance(key, str) and key.startswith("features.")}
    for arch, marker in (("vgg19", "16"), ("vgg16", "17")):
        convs = {str(i) for i, name in enumerate(layer_names(arch)) if name.startswith("conv")}
        if marker in indices and indices <= convs:
            return arch
    return None


def read_state(path: Path) -> dict:
    """The state dict stored in a torchvision VGG weights file, or ``CheckpointError`` saying why not."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"VGG weights {path} do not exist; pass an existing vgg19-*.pth or vgg16-*.pth file."
        ) from None
    except Exception as exc:
        raise CheckpointError(
            f"VGG weights {path} cannot be read ({type(exc).__name__}); {_WHICH_FILE}."
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"VGG weights {path} hold no state dict; {_WHICH_FILE}.")
    return state


class VGGFeatures(nn.Module):
    """The torchvision VGG trunk up to the deepest of ``taps``; ``forward`` returns the activations at
    ``taps`` in the order given, of an RGB batch in [0, 1] (ImageNet normalisation is applied here).

    ``pooling="avg"`` swaps each max pooling for an average pooling of the same size, which Gatys et al.
    found gives smoother gradients for image synthesis; the weights are the same either way.
    """

    def __init__(self, arch: str, taps: Sequence[str], pooling: str = "max") -> None:
        super().__init__()
        names = layer_names(arch)
        unknown = [tap for tap in taps if tap not in names]
        if unknown or not taps:
            raise CheckpointError(
                f"{arch} has no layer {unknown or taps}; use names like relu4_2 or conv1_1."
            )
        if pooling not in ("max", "avg"):
            raise CheckpointError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.arch = arch
        self.taps = tuple(taps)
        self._tap_index = {tap: names.index(tap) for tap in self.taps}
        depth = max(self._tap_index.values()) + 1
        layers: list[nn.Module] = []
        channels = 3
        for item in _layout(arch):
            if item == "M":
                layers.append(nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                channels = item
        self.features = nn.Sequential(*layers[:depth])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def load_torchvision(self, path: Path, state: dict | None = None) -> None:
        """Load the ``features.*`` tensors of a torchvision VGG state dict (``state`` if already read)."""
        path = Path(path)
        if state is None:
            state = read_state(path)
        label = self.arch.upper()
        wanted = self.features.state_dict()
        found = {
            k[len("features.") :]: v
            for k, v in state.items()
            if isinstance(k, str) and k.startswith("features.")
        }
        missing = [k for k in wanted if k not in found]
        wrong = [
            k
            for k in wanted
            if k in found and tuple(getattr(found[k], "shape", ())) != tuple(wanted[k].shape)
        ]
        if missing or wrong:
            keys = ", ".join(f"features.{k}" for k in (missing or wrong)[:3])
            detail = f"missing {keys}" if missing else f"mis-shaped {keys}"
            other = detect_arch(state)
            hint = f" (it looks like {other.upper()} weights)" if other and other != self.arch else ""
            raise CheckpointError(
                f"VGG weights {path} are not a torchvision {label} state dict ({detail}){hint}; "
                f"pass {self.arch}-*.pth or an equivalent file."
            )
        self.features.load_state_dict({k: found[k] for k in wanted}, strict=True)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        wanted = {index: tap for tap, index in self._tap_index.items()}
        found: dict[str, torch.Tensor] = {}
        h = (x - self.mean) / self.std
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in wanted:
                found[wanted[index]] = h
        return [found[tap] for tap in self.taps]


def load_vgg(path: Path, taps: Sequence[str], arch: str | None = None, pooling: str = "max") -> VGGFeatures:
    """A ``VGGFeatures`` with the weights in ``path``; ``arch=None`` takes whichever of VGG16/19 it holds."""
    state = read_state(Path(path))
    if arch is None:
        arch = detect_arch(state)
        if arch is None:
            raise CheckpointError(
                f"VGG weights {path} are neither a torchvision VGG16 nor VGG19 state dict "
                "(batch-norm variants are not supported); pass vgg19-*.pth or vgg16-*.pth."
            )
    vgg = VGGFeatures(arch, taps, pooling)
    vgg.load_torchvision(Path(path), state)
    return vgg


def _layout(arch: str) -> tuple[int | str, ...]:
    try:
        return LAYOUTS[arch]
    except KeyError:
        raise CheckpointError(f"unknown VGG architecture {arch!r}; use one of {', '.join(LAYOUTS)}") from None
