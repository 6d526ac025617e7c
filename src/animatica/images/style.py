"""Neural style transfer after Gatys, Ecker and Bethge (CVPR 2016, "Image Style Transfer Using
Convolutional Neural Networks").

A picture is optimised, pixel by pixel, so that its VGG activations at ``relu4_2`` match those of the
content picture while the Gram matrices (channel-by-channel correlations, which keep texture and colour
but drop layout) of its activations at ``relu1_1 … relu5_1`` match those of the style picture, each
style layer weighted 1/5 as in the paper. The paper's layers are named ``conv*``, but its Caffe network
applies the ReLU in place, so those are rectified responses: the ``relu*`` names here are the same
quantities.

Choices and why:

* **L-BFGS** (as in the paper) with a strong-Wolfe line search: it converges in a few hundred
  iterations where Adam needs thousands for the same loss, and the line search keeps a large style
  weight from making it diverge. One step is one L-BFGS iteration (usually one or two passes through
  VGG), so the progress bar moves evenly.
* The picture **starts from the content picture** by default (the paper starts from white noise):
  that needs far fewer iterations for the same look and keeps the composition even when stopped
  early. ``init="noise"`` gives the paper's start, drawn from ``seed``; with the content start the
  run is deterministic anyway.
* Losses are **normalised** so the weights mean the same at any picture size: the content term is the
  mean squared difference of the activations, a Gram matrix is divided by its number of entries
  (channels × positions) and the style term is the mean squared difference of the Gram matrices. With
  that, ``content_weight=1, style_weight=1e6`` is a balanced default on ImageNet VGG weights; the
  paper's α/β ratios use unnormalised sums and do not carry over.
* Pixels are clamped to [0, 1] before each pass, so the result needs no rescaling.
* The longer side of the working picture is at most ``max_size`` (512 by default): the cost grows with
  the pixel count, and VGG's receptive fields are sized for pictures of a few hundred pixels, so larger
  pictures mostly get a finer, weaker style. The result is returned at that working size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from animatica.device import resolve_device
from animatica.images.errors import ImageRequestError
from animatica.images.request import MAX_STYLE_STEPS
from animatica.media.fit import fit_within
from animatica.vgg import load_vgg

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_STEPS = 300
DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 1e6
DEFAULT_MAX_SIZE = 512
# Below this, relu5_1 (after four poolings) would be one pixel or less.
MIN_SIDE = 32
MAX_SIZE_LIMIT = 2048


@dataclass(frozen=True)
class StyleResult:
    image: Image.Image
    # Total loss measured at each step, before that step's update: the curve a caller can check or plot.
    losses: tuple[float, ...]
    # "vgg16" or "vgg19", as found in the weights file.
    arch: str


def transfer_style(
    content: np.ndarray,
    style: np.ndarray,
    vgg_weights: Path,
    *,
    steps: int = DEFAULT_STEPS,
    content_weight: float = DEFAULT_CONTENT_WEIGHT,
    style_weight: float = DEFAULT_STYLE_WEIGHT,
    max_size: int = DEFAULT_MAX_SIZE,
    init: str = "content",
    seed: int = 0,
    pooling: str = "max",
    progress: Callable[[int, int], None] | None = None,
    device: str = "cpu",
) -> StyleResult:
    """Paint ``content`` (an ``(H, W, 3)`` uint8 RGB array) in the style of ``style`` (the same format).

    ``vgg_weights`` is a torchvision VGG16 or VGG19 file (which one is read from the file). ``progress``
    is called with ``(step, steps)`` after every step. ``pooling="avg"`` is the paper's variant.
    """
    _check_options(steps, content_weight, style_weight, max_size, init)
    content = _checked_pixels(content, "content")
    style = _checked_pixels(style, "style")
    vgg = load_vgg(Path(vgg_weights), (CONTENT_LAYER, *STYLE_LAYERS), pooling=pooling)
    dev = resolve_device(device)
    vgg = vgg.to(dev)

    content = fit_within(content, max_size)
    if min(content.shape[:2]) < MIN_SIDE:
        raise ImageRequestError(
            f"the content picture is {content.shape[1]}x{content.shape[0]} at the working size; "
            f"style transfer needs at least {MIN_SIDE} pixels on each side"
        )
    style = _resize_longer_side(style, max(content.shape[:2]))
    content_t = _to_tensor(content, dev)
    style_t = _to_tensor(style, dev)
    with torch.no_grad():
        content_target = vgg(content_t)[0]
        style_targets = [_gram(f) for f in vgg(style_t)[1:]]

    if init == "content":
        picture = content_t.clone()
    else:
        generator = torch.Generator().manual_seed(int(seed))
        picture = torch.rand(content_t.shape, generator=generator).to(dev)
    picture.requires_grad_(True)
    optimizer = torch.optim.LBFGS([picture], lr=1.0, max_iter=1, line_search_fn="strong_wolfe")
    layer_weight = 1.0 / len(STYLE_LAYERS)
    losses: list[float] = []

    def closure() -> torch.Tensor:
        with torch.no_grad():
            picture.clamp_(0, 1)
        optimizer.zero_grad()
        features = vgg(picture)
        loss = content_weight * F.mse_loss(features[0], content_target)
        if style_weight:
            for feature, target in zip(features[1:], style_targets, strict=True):
                loss = loss + style_weight * layer_weight * F.mse_loss(_gram(feature), target)
        loss.backward()
        return loss

    for step in range(1, steps + 1):
        loss = optimizer.step(closure)
        value = float(loss.detach())
        if not np.isfinite(value):
            raise ImageRequestError(
                "style transfer diverged (the loss is no longer finite); lower --style-weight"
            )
        losses.append(value)
        if progress is not None:
            progress(step, steps)
    with torch.no_grad():
        picture.clamp_(0, 1)
    return StyleResult(image=_to_image(picture), losses=tuple(losses), arch=vgg.arch)


def _gram(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations of one picture's activations, divided by the number of entries summed."""
    _, channels, height, width = features.shape
    flat = features.reshape(channels, height * width)
    return flat @ flat.t() / (channels * height * width)


def _check_options(steps: int, content_weight: float, style_weight: float, max_size: int, init: str) -> None:
    if not 1 <= steps <= MAX_STYLE_STEPS:
        raise ImageRequestError(f"steps must be between 1 and {MAX_STYLE_STEPS}, not {steps}")
    if content_weight < 0 or style_weight < 0 or not np.isfinite(content_weight + style_weight):
        raise ImageRequestError("content and style weights must be finite and not negative")
    if content_weight == 0 and style_weight == 0:
        raise ImageRequestError("content and style weights cannot both be 0")
    if not MIN_SIDE <= max_size <= MAX_SIZE_LIMIT:
        raise ImageRequestError(
            f"the size must be between {MIN_SIDE} and {MAX_SIZE_LIMIT} pixels, not {max_size}"
        )
    if init not in ("content", "noise"):
        raise ImageRequestError(f"init must be 'content' or 'noise', not {init!r}")


def _checked_pixels(pixels: np.ndarray, role: str) -> np.ndarray:
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ImageRequestError(f"the {role} picture must be 8-bit RGB")
    if min(pixels.shape[:2]) < 1:
        raise ImageRequestError(f"the {role} picture is empty")
    return pixels


def _resize_longer_side(pixels: np.ndarray, side: int) -> np.ndarray:
    """Style statistics depend on scale, so the style picture is brought to the content's scale."""
    height, width = pixels.shape[:2]
    scale = side / max(height, width)
    size = (max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def _to_tensor(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(pixels, dtype=np.float32)).permute(2, 0, 1).div(255)
    return tensor.unsqueeze(0).contiguous().to(device)


def _to_image(tensor: torch.Tensor) -> Image.Image:
    pixels = tensor[0].permute(1, 2, 0).mul(255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return Image.fromarray(pixels)
