"""One-Euro filter (Casiez, Roussel & Vogel, CHI 2012) for landmark tracks.

Landmark detectors jitter by a pixel or so from frame to frame; a fixed low-pass filter removes
that but makes fast motions (a blink, a quick nod) lag. The One-Euro filter raises its cutoff
frequency with the signal's speed: still faces are smoothed hard, moving ones pass through.
Values are in whatever unit the caller chooses; the engine feeds landmarks divided by the face
size, so the parameters do not depend on the video's resolution.
"""

import math

import numpy as np


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters an array-valued signal sampled at a fixed rate (one call per frame)."""

    def __init__(
        self, rate: float = 30.0, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0
    ) -> None:
        self.dt = 1.0 / rate
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def reset(self, value: np.ndarray | None = None) -> None:
        self._value = None if value is None else np.array(value, dtype=np.float64)
        self._speed = None if value is None else np.zeros_like(self._value)

    def __call__(self, value: np.ndarray) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if self._value is None or self._speed is None:
            self.reset(value)
            return value.copy()
        raw_speed = (value - self._value) / self.dt
        a_d = _alpha(self.d_cutoff, self.dt)
        self._speed = a_d * raw_speed + (1 - a_d) * self._speed
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        tau = 1.0 / (2 * np.pi * cutoff)
        a = 1.0 / (1.0 + tau / self.dt)
        self._value = a * value + (1 - a) * self._value
        return self._value.copy()
