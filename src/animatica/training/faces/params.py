"""Who a synthetic person is, what each clip looks like, and how the face moves in it.

Three kinds of parameters, each drawn from its own branch of the seed so that they can be
recombined (the cross-identity ground truth renders one person with another person's motion):

- identity (per person): face shape and proportions, colours, hair style;
- scene (per clip): background, lighting, clothes, framing — what changes between two videos
  of the same person;
- motion (per clip, per frame): expression and head pose. Every trajectory starts at exactly
  zero (neutral face, frontal pose) so that motion relative to the first driving frame equals
  absolute motion, then moves smoothly, at the pace of a person talking at 25 frames a second.
"""

from __future__ import annotations

import math

import numpy as np

FPS = 25.0

# Expression and pose names, in the order they are written to the params files.
MOTION = ("mouth_open", "smile", "blink", "brows", "yaw", "pitch", "roll")
# Ranges of the motion parameters (the pose angles are in degrees).
MOTION_RANGE = {
    "mouth_open": (0.0, 1.0),
    "smile": (0.0, 1.0),
    "blink": (0.0, 1.0),
    "brows": (-1.0, 1.0),
    "yaw": (-25.0, 25.0),
    "pitch": (-15.0, 15.0),
    "roll": (-12.0, 12.0),
}

# Identity parameters and their uniform ranges (colours are RGB in [0, 1]; the hair style is a
# category stored as a float so that every identity value is a number).
IDENTITY_RANGE = {
    "face_width": (0.88, 1.08),
    "face_length": (0.92, 1.1),
    "jaw_width": (0.62, 0.95),
    "jaw_round": (2.0, 3.2),
    "skin_tone": (0.0, 1.0),
    "skin_warmth": (0.0, 1.0),
    "hair_style": (0.0, 4.0),
    "hair_volume": (0.05, 0.2),
    "hairline": (0.0, 0.22),
    "eye_spacing": (0.44, 0.53),
    "eye_size": (0.85, 1.12),
    "eye_open": (0.8, 1.2),
    "eye_tilt": (-0.03, 0.05),
    "brow_height": (-0.05, 0.05),
    "brow_thickness": (0.045, 0.085),
    "brow_arch": (0.0, 0.06),
    "nose_length": (0.85, 1.12),
    "nose_width": (0.8, 1.25),
    "nose_depth": (0.8, 1.2),
    "mouth_width": (0.85, 1.15),
    "lip_upper": (0.06, 0.11),
    "lip_lower": (0.08, 0.14),
    "lip_red": (0.0, 1.0),
    "ear_size": (0.85, 1.15),
}
COLOUR_PARAMETERS = ("hair", "iris")
IDENTITY = (
    *IDENTITY_RANGE,
    *(f"{part}_{channel}" for part in COLOUR_PARAMETERS for channel in "rgb"),
)

_HAIR_COLOURS = np.array(
    [
        [0.08, 0.06, 0.05],  # black
        [0.22, 0.14, 0.08],  # dark brown
        [0.42, 0.27, 0.15],  # brown
        [0.55, 0.25, 0.1],  # auburn
        [0.78, 0.64, 0.38],  # blond
        [0.62, 0.6, 0.58],  # grey
    ]
)
_HAIR_WEIGHTS = np.array([0.3, 0.25, 0.18, 0.08, 0.12, 0.07])
_IRIS_COLOURS = np.array([[0.3, 0.18, 0.08], [0.2, 0.35, 0.55], [0.3, 0.42, 0.22], [0.45, 0.35, 0.18]])


def sample_identity(rng: np.random.Generator) -> dict[str, float]:
    """One person's identity parameters."""
    identity = {name: float(rng.uniform(low, high)) for name, (low, high) in IDENTITY_RANGE.items()}
    identity["hair_style"] = float(rng.integers(0, 5))
    hair = _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=_HAIR_WEIGHTS)] * rng.uniform(0.85, 1.15, 3)
    iris = _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))] * rng.uniform(0.8, 1.2, 3)
    for part, colour in (("hair", hair), ("iris", iris)):
        for channel, value in zip("rgb", np.clip(colour, 0, 1), strict=True):
            identity[f"{part}_{channel}"] = float(value)
    return identity


def skin_colour(identity: dict[str, float]) -> np.ndarray:
    """RGB skin colour from tone (light to dark) and warmth (pink to yellow)."""
    tone, warmth = identity["skin_tone"], identity["skin_warmth"]
    light = np.array([0.96, 0.8, 0.7]) + warmth * np.array([-0.02, 0.02, -0.06])
    dark = np.array([0.42, 0.27, 0.18]) + warmth * np.array([0.02, 0.02, -0.04])
    return np.clip(light * (1 - tone) + dark * tone, 0, 1)


def sample_scene(rng: np.random.Generator) -> dict[str, float]:
    """One clip's scene: background, light, clothes and framing (floats, like every parameter)."""
    first = rng.uniform(0.1, 0.9, 3)
    second = np.clip(first + rng.normal(0, 0.25, 3), 0, 1)
    shirt = rng.uniform(0.05, 0.9, 3)
    scene = {
        "background": float(rng.integers(0, 3)),  # plain, gradient, soft blotches
        "background_angle": float(rng.uniform(0, 2 * math.pi)),
        "background_seed": float(rng.integers(0, 2**31)),
        "light_angle": float(rng.uniform(-2.4, -0.7)),  # from above, left or right
        "light_strength": float(rng.uniform(0.25, 0.55)),
        "scale": float(rng.uniform(0.94, 1.06)),
        "shift_x": float(rng.uniform(-0.03, 0.03)),
        "shift_y": float(rng.uniform(-0.025, 0.025)),
        "collar": float(rng.integers(0, 2)),
    }
    for name, colour in (("background_1", first), ("background_2", second), ("shirt", shirt)):
        for channel, value in zip("rgb", colour, strict=True):
            scene[f"{name}_{channel}"] = float(value)
    return scene


def _ramp(t: np.ndarray, seconds: float) -> np.ndarray:
    """0 at t = 0 rising smoothly (zero slope) to 1 at ``seconds``: motion starts gently."""
    x = np.clip(t / seconds, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _wander(rng: np.random.Generator, t: np.ndarray, slowest: float, fastest: float, waves: int = 3):
    """A smooth random signal in about [-1, 1] that is exactly 0 at t = 0."""
    total = np.zeros_like(t)
    for _ in range(waves):
        freq = rng.uniform(slowest, fastest)
        phase = rng.uniform(0, 2 * math.pi)
        total += np.sin(2 * math.pi * freq * t + phase) - math.sin(phase)
    return total / waves


def sample_motion(rng: np.random.Generator, frames: int) -> list[dict[str, float]]:
    """Per-frame expression and pose: talking, blinking, small head turns; frame 0 all zero."""
    t = np.arange(frames) / FPS
    ramp = _ramp(t, 0.4)
    talk = rng.uniform(0.3, 1.0)  # how much this clip's person talks
    syllables = rng.uniform(3.0, 5.0)
    envelope = np.clip(0.55 + 0.6 * _wander(rng, t, 0.2, 0.7, 2), 0, 1)
    mouth = np.clip(np.sin(2 * math.pi * syllables * t + rng.uniform(0, 2 * math.pi)), 0, None) ** 1.5
    mouth = talk * envelope * ramp * (0.25 + 0.75 * mouth)
    smile = np.clip(rng.uniform(0.0, 0.8) * ramp * (0.5 + 0.7 * _wander(rng, t, 0.1, 0.5)), 0, 1)
    blink = np.zeros_like(t)
    n_blinks = int(rng.integers(0, 2 + round(t[-1] / 2.5))) if frames > 1 else 0
    for centre in rng.uniform(0.2, max(0.21, t[-1]), n_blinks):
        blink = np.maximum(blink, np.exp(-(((t - centre) / 0.06) ** 2)))
    brows = rng.uniform(0.3, 1.0) * ramp * _wander(rng, t, 0.2, 0.9, 2)
    pose = {
        name: rng.uniform(0.3, 1.0) * high * ramp * _wander(rng, t, 0.15, 0.6)
        for name, high in (("yaw", 25.0), ("pitch", 15.0), ("roll", 12.0))
    }
    values = {"mouth_open": mouth, "smile": smile, "blink": blink, "brows": brows, **pose}
    for name, (low, high) in MOTION_RANGE.items():
        values[name] = np.clip(values[name], low, high)
        values[name][0] = 0.0
    return [{name: round(float(values[name][i]), 6) for name in MOTION} for i in range(frames)]


def neutral() -> dict[str, float]:
    """The neutral expression in the frontal pose."""
    return {name: 0.0 for name in MOTION}
