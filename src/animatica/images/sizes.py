"""Which size to draw at, given the size a user wants.

Stable Diffusion draws well only near the size it was trained at (512 px for 1.x, 768 for 2.x): far
above it, subjects repeat and limbs multiply; far below, it draws mush. So a picture is always
drawn with about the model's native number of pixels, in the aspect ratio of the requested output,
and then enlarged (by the x4 upscaler when the operator has one, else Lanczos) and centre-cropped to
the exact output size.
"""

from __future__ import annotations

import math

# Enlargements below this are left to the resampler: running the x4 model and shrinking its output
# back costs minutes on a CPU for detail a 25% enlargement does not need.
MODEL_UPSCALE_ABOVE = 1.25


def native_side(sample_size: int, vae_scale: int) -> int:
    """A model's native picture side: its UNet's latent ``sample_size`` times the VAE's scale."""
    return int(sample_size) * int(vae_scale)


def generation_size(output: tuple[int, int], native: int, multiple: int = 8) -> tuple[int, int]:
    """(W, H) to draw at: about ``native``² pixels, the aspect of ``output``, sides a ``multiple``.

    The sides are rounded up, so the drawn picture never has less of the requested aspect to crop from.
    """
    width, height = output
    aspect = width / height
    draw_w = native * math.sqrt(aspect)
    draw_h = native / math.sqrt(aspect)
    return round_up(draw_w, multiple), round_up(draw_h, multiple)


def round_up(value: float, multiple: int) -> int:
    """``value`` rounded up to a whole ``multiple`` (at least one)."""
    return max(multiple, math.ceil(value / multiple - 1e-9) * multiple)


def needs_model_upscale(drawn: tuple[int, int], output: tuple[int, int]) -> bool:
    """Whether enlarging ``drawn`` to ``output`` is large enough to be worth the x4 model."""
    return max(output[0] / drawn[0], output[1] / drawn[1]) > MODEL_UPSCALE_ABOVE
