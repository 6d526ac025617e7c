"""Morphing one face into another through a VAE+GAN's latent space.

Both faces are encoded (posterior means) and the path between the two latents is decoded.
The path is spherical (slerp) by default: the posterior means of a VAE trained with a KL term
sit near the shell where the prior's mass is, and a straight line between two of them cuts
inside it, through latents the decoder rarely saw, which decode to a washed-out average face
halfway. ``linear`` keeps the straight line for comparison.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from animatica.errors import AnimaticaError

METHODS = ("slerp", "linear")


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of two latents ``(D,)`` at ``t`` in [0, 1]; linear when they are parallel
    (the great circle is not defined there)."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega.sin()) < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / omega.sin()


def check_morph(frames: int, method: str) -> None:
    if method not in METHODS:
        raise AnimaticaError(f"unknown interpolation {method!r}; use one of {', '.join(METHODS)}")
    if frames < 2:
        raise AnimaticaError(f"--frames must be at least 2, got {frames}")


def path(a: torch.Tensor, b: torch.Tensor, frames: int, method: str = "slerp") -> torch.Tensor:
    """``(frames, D)`` latents from ``a`` to ``b`` inclusive."""
    check_morph(frames, method)
    steps = np.linspace(0.0, 1.0, frames)
    if method == "linear":
        return torch.stack([(1 - float(t)) * a + float(t) * b for t in steps])
    return torch.stack([slerp(a, b, float(t)) for t in steps])


def morph_frames(
    engine, first: np.ndarray, second: np.ndarray, frames: int, method: str = "slerp", batch: int = 8
) -> Iterator[np.ndarray]:
    """Frames ``(S, S, 3)`` uint8 morphing ``first`` into ``second`` (both at the engine's frame size);
    ``engine`` is a loaded ``VaeganEngine``."""
    z = engine.encode(np.stack([first, second]))
    latents = path(z[0], z[1], frames, method)
    photos = None
    if engine.conditioned:
        # A decoder conditioned on a photo gets the cross-fade of the two: the latent path moves the
        # face, the photos' pixels carry the identities from the first to the second.
        pair = engine._to_tensor(np.stack([first, second]))
        weights = torch.from_numpy(np.linspace(0.0, 1.0, frames)).float().view(-1, 1, 1, 1)
        photos = (1 - weights) * pair[:1] + weights * pair[1:]
    for start in range(0, frames, batch):
        chunk = None if photos is None else photos[start : start + batch]
        yield from engine.to_uint8(engine.decode(latents[start : start + batch], chunk))


def face_input(image: np.ndarray, side: int, crop: bool | None = None) -> np.ndarray:
    """``image`` as the model's ``side`` x ``side`` input: the face's crop (framed as animation frames
    it) when ``crop`` is on, or when it is None and the picture is larger than the input and shows
    a face; else the centred square of the whole picture."""
    from animatica.media.fit import fit_frame

    if crop is None and max(image.shape[:2]) > side:
        from animatica.face.analyzer import get_analyzer

        crop = bool(get_analyzer().detect(image, thorough=True))
    if crop:
        from animatica.face.portrait_crop import crop_portrait, framings

        return crop_portrait(image, side, framing=framings("vaegan")[0]).image
    return fit_frame(image, (side, side), "crop")


def enlarge(frame: np.ndarray, size: int) -> np.ndarray:
    """A frame shown at ``size`` pixels (bicubic), so a 64-pixel model's output is watchable."""
    from PIL import Image

    if frame.shape[0] == size:
        return frame
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BICUBIC))
