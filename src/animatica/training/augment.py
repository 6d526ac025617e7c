"""Augmentations applied identically to every frame of a sample.

The source and driving frames of a training pair must receive the same flip, rotation, crop and
colour change: if they differed, the network would be asked to explain the augmentation as
motion. One random draw is made per sample and applied to all of its frames.

Parameters follow the ``augmentation_params`` section of the public config format::

    flip_param:     {horizontal_flip: bool, time_flip: bool}
    jitter_param:   {brightness: f, contrast: f, saturation: f, hue: f}
    rotation_param: {degrees: f}
    resize_param:   {ratio: [low, high]}
    crop_param:     {size: [height, width]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image
from skimage.color import hsv2rgb, rgb2hsv

from animatica.training.errors import DatasetError

_KNOWN = {"flip_param", "jitter_param", "rotation_param", "resize_param", "crop_param"}


class Augmenter:
    """Draws one set of augmentation parameters per call and applies it to all given frames."""

    def __init__(self, params: Mapping[str, Any] | None = None):
        params = dict(params or {})
        unknown = set(params) - _KNOWN
        if unknown:
            raise DatasetError(
                f"unknown augmentation section(s) {', '.join(sorted(unknown))}; "
                f"use {', '.join(sorted(_KNOWN))}."
            )
        flip = params.get("flip_param") or {}
        self.horizontal_flip = bool(flip.get("horizontal_flip", False))
        self.time_flip = bool(flip.get("time_flip", False))
        jitter = params.get("jitter_param") or {}
        self.brightness = float(jitter.get("brightness", 0))
        self.contrast = float(jitter.get("contrast", 0))
        self.saturation = float(jitter.get("saturation", 0))
        self.hue = float(jitter.get("hue", 0))
        if not 0 <= self.hue <= 0.5:
            raise DatasetError(f"jitter hue must be in [0, 0.5], got {self.hue}.")
        self.degrees = float((params.get("rotation_param") or {}).get("degrees", 0))
        ratio = (params.get("resize_param") or {}).get("ratio")
        self.ratio = None if ratio is None else (float(ratio[0]), float(ratio[1]))
        size = (params.get("crop_param") or {}).get("size")
        self.crop = None if size is None else (int(size[0]), int(size[1]))

    def __call__(self, frames: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        """Augment a list of (H, W, 3) uint8 frames; returns float32 frames in [0, 1]."""
        if self.time_flip and rng.random() < 0.5:
            frames = frames[::-1]
        if self.horizontal_flip and rng.random() < 0.5:
            frames = [f[:, ::-1] for f in frames]
        frames = self._geometry(frames, rng)
        out = [f.astype(np.float32) / 255.0 for f in frames]
        return self._jitter(out, rng)

    def _geometry(self, frames: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        if not (self.degrees or self.ratio or self.crop):
            return [np.ascontiguousarray(f) for f in frames]
        angle = rng.uniform(-self.degrees, self.degrees) if self.degrees else 0.0
        h, w = frames[0].shape[:2]
        ratio = rng.uniform(*self.ratio) if self.ratio else 1.0
        new_h, new_w = max(1, round(h * ratio)), max(1, round(w * ratio))
        crop_h, crop_w = self.crop or (new_h, new_w)
        top = int(rng.integers(0, max(new_h - crop_h, 0) + 1))
        left = int(rng.integers(0, max(new_w - crop_w, 0) + 1))
        out = []
        for frame in frames:
            image = Image.fromarray(np.ascontiguousarray(frame))
            if angle:
                image = image.rotate(angle, resample=Image.BILINEAR)
            if (new_h, new_w) != (h, w):
                image = image.resize((new_w, new_h), Image.BILINEAR)
            array = np.asarray(image)
            if self.crop:
                # Pad with black when the resized frame is smaller than the crop, as a crop window would.
                canvas = np.zeros((crop_h, crop_w, 3), dtype=np.uint8)
                piece = array[top : top + crop_h, left : left + crop_w]
                canvas[: piece.shape[0], : piece.shape[1]] = piece
                array = canvas
            out.append(array)
        return out

    def _jitter(self, frames: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        if not (self.brightness or self.contrast or self.saturation or self.hue):
            return frames
        b = rng.uniform(1 - self.brightness, 1 + self.brightness)
        c = rng.uniform(1 - self.contrast, 1 + self.contrast)
        s = rng.uniform(1 - self.saturation, 1 + self.saturation)
        shift = rng.uniform(-self.hue, self.hue)
        scaled = [frame * b for frame in frames]
        x = np.stack([np.clip((f - f.mean()) * c + f.mean(), 0, 1) for f in scaled])
        if s != 1 or shift:
            # All frames in one conversion: for small frames the per-call overhead dominates.
            hsv = rgb2hsv(x)
            hsv[..., 0] = (hsv[..., 0] + shift) % 1.0
            hsv[..., 1] = np.clip(hsv[..., 1] * s, 0, 1)
            x = hsv2rgb(hsv)
        return list(np.clip(x, 0, 1).astype(np.float32))
