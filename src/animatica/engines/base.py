"""The engine protocol: prepare a source once, then animate driving frames in chunks.

Frames cross this boundary as ``uint8`` RGB arrays: one image is ``(H, W, 3)``, a chunk of
driving frames is ``(N, H, W, 3)``. An engine with a fixed ``frame_size`` expects every frame
already fitted to that size (the pipeline does it); an engine whose ``frame_size`` is ``None``
takes frames of any size.

``prepare`` computes everything that depends only on the source and on the initial driving
frame (the one relative motion is measured from). Its result is all that ``animate`` needs
besides the chunk itself, so chunks can be animated in any order, on any worker, with the same
result as one pass over the whole video.
"""

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Engine(Protocol):
    name: str
    frame_size: tuple[int, int] | None  # (height, width) the engine works at, or None for any

    def prepare(self, source: np.ndarray, initial_driving: np.ndarray) -> Any:
        """Work done once per job: source encoding, source and initial-driving motion state."""
        ...

    def animate(self, state: Any, driving: np.ndarray) -> np.ndarray:
        """Animate a chunk ``(N, H, W, 3)`` of driving frames; returns ``(N, H', W', 3)`` uint8."""
        ...


# The face toolkit registers a matcher here: given the source and an iterator of driving frames
# (all at the engine's frame size) it returns the index of the driving frame whose pose is closest.
BestFrameFinder = Callable[[np.ndarray, Any], int]
