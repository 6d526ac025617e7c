"""Colour and lighting transfer between two pictures of a face region, in CIE Lab.

A face pasted from another photo has that photo's white balance, exposure and light direction.
Lab separates lightness from colour and is roughly perceptually uniform, so matching the
statistics of each channel there moves skin tone and contrast without the hue shifts an RGB
match gives. It happens at two scales:
 - the whole region: each channel's mean and spread (Reinhard et al., 2001), measured only where
   ``weights`` say (the skin, without the mouth and eyes, whose colours are not the skin's);
 - lighting: the lightness averaged over neighbourhoods about a quarter of a face wide, so one
   side of the face is darker where the target's light falls that way. At that scale shading
   carries the light's direction but not the shapes of eyes, nose or mouth, so the target's
   features do not come along with its light.
Local averages are normalised convolutions (blur of weighted values over blur of weights), so
pixels outside the region (hair, background) never leak into them.
"""

import cv2
import numpy as np

# Bounds on how much the spread of a channel may be stretched or squeezed: a flat-lit photo onto a
# contrasty target must not turn noise into blotches, nor the reverse wash a face out.
_MIN_GAIN, _MAX_GAIN = 0.5, 2.0
_BLUR_SIGMA = 3.0  # pixels: wide blurs run on a copy shrunk until their sigma is this


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` Lab float32 (L in 0..100) of an RGB image in 0..255 (any dtype)."""
    return cv2.cvtColor(np.asarray(rgb, dtype=np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)


def from_lab(lab: np.ndarray) -> np.ndarray:
    """RGB float32 in 0..255 (clipped) of a Lab image."""
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB) * 255.0, 0.0, 255.0)


def weighted_stats(image: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``image`` ``(h, w, C)`` under ``weights`` ``(h, w)``."""
    w = weights.reshape(-1).astype(np.float64)
    pixels = image.reshape(len(w), -1).astype(np.float64)
    total = max(float(w.sum()), 1e-9)
    mean = w @ pixels / total
    var = w @ (pixels * pixels) / total - mean * mean
    return mean, np.sqrt(np.maximum(var, 0.0))


def local_mean(channel: np.ndarray, weights: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-weighted local mean of ``channel`` over the region, and the local weight mass
    (how much of the neighbourhood is inside the region: near 0 the mean means nothing).

    A blur this wide has no detail to keep, so it runs on a copy shrunk until ``sigma`` is a few
    pixels and is enlarged back: the same result for a fraction of the cost of a wide kernel.
    """
    h, w = weights.shape
    factor = min(1.0, _BLUR_SIGMA / max(sigma, 1e-6))
    size = (max(4, round(w * factor)), max(4, round(h * factor)))
    small_w = cv2.resize(weights.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    small_v = cv2.resize(channel.astype(np.float32) * weights, size, interpolation=cv2.INTER_AREA)
    s = sigma * size[0] / w
    mass = cv2.GaussianBlur(small_w, (0, 0), s, borderType=cv2.BORDER_REPLICATE)
    total = cv2.GaussianBlur(small_v, (0, 0), s, borderType=cv2.BORDER_REPLICATE)
    mean = total / np.maximum(mass, 1e-6)
    if size != (w, h):
        mean = cv2.resize(mean, (w, h), interpolation=cv2.INTER_LINEAR)
        mass = cv2.resize(mass, (w, h), interpolation=cv2.INTER_LINEAR)
    return mean, mass


def transfer_colour(
    source: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray,
    *,
    lighting_sigma: float | None = None,
) -> np.ndarray:
    """``source`` recoloured to look lit and white-balanced like ``target``; RGB float32 0..255.

    ``source`` and ``target`` are aligned ``(h, w, 3)`` RGB pictures of the same region (the photo's
    face already warped onto the target's); ``weights`` ``(h, w)`` in 0..1 say where both show skin.
    ``lighting_sigma`` (pixels) also carries the target's light direction over at that scale.
    """
    src, dst = to_lab(source), to_lab(target)
    mean_s, std_s = weighted_stats(src, weights)
    mean_d, std_d = weighted_stats(dst, weights)
    gain = np.clip(std_d / np.maximum(std_s, 1e-6), _MIN_GAIN, _MAX_GAIN)
    out = ((src - mean_s) * gain + mean_d).astype(np.float32)
    if lighting_sigma is not None and lighting_sigma > 0:
        lit_s, mass = local_mean(out[..., 0], weights, lighting_sigma)
        lit_d, _ = local_mean(dst[..., 0], weights, lighting_sigma)
        # Trust the local difference only where the neighbourhood is mostly skin.
        trust = np.clip(mass / 0.5, 0.0, 1.0)
        out[..., 0] += trust * (lit_d - lit_s)
    out[..., 0] = np.clip(out[..., 0], 0.0, 100.0)
    return from_lab(out)
