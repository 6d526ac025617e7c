"""The engine protocol: prepare a source once, then animate driving frames in chunks.

Frames cross this boundary as ``uint8`` RGB arrays: one image is ``(H, W, 3)``, a chunk of
driving frames is ``(N, H, W, 3)``. An engine with a fixed ``frame_size`` expects every frame
already fitted to that size (the pipeline does it); an engine whose ``frame_size`` is ``None``
takes frames of any size.

``prepare`` computes everything that depends only on the source and on the initial driving
frame (the one relative motion is measured from). Its result is all that ``animate`` needs
besides the chunk itself, so chunks can be animated in any order, on any worker, with the same
result as one pass over the whole video.

A state crosses processes as plain data: ``state_to_dict`` gives a tree of dicts (string keys),
lists, strings, numbers, booleans, ``None`` and CPU ``torch.Tensor``s, which ``torch.load``
reads back with ``weights_only=True`` (no arbitrary pickled objects), and ``state_from_dict``
rebuilds a state that animates exactly as the original. Each call gives a fresh state, so a
state that ``animate`` mutates can be rebuilt any number of times.

An engine that carries something from frame to frame (a tracker, a smoother) says how many
frames it needs to settle (``warmup_frames``); a segment then starts that many frames early and
feeds them to ``warm_up``, which advances the state without rendering. A stateless engine has
``warmup_frames = 0``.
"""

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from animatica.errors import AnimaticaError


class StateError(AnimaticaError):
    """A saved state that cannot be used: damaged, written by another engine or by another
    version of the format, or prepared for other inputs."""


@runtime_checkable
class Engine(Protocol):
    name: str
    frame_size: tuple[int, int] | None  # (height, width) the engine works at, or None for any
    warmup_frames: int  # frames a segment starts early to settle the state (0: stateless)

    def prepare(self, source: np.ndarray, initial_driving: np.ndarray) -> Any:
        """Work done once per job: source encoding, source and initial-driving motion state."""
        ...

    def animate(self, state: Any, driving: np.ndarray) -> np.ndarray:
        """Animate a chunk ``(N, H, W, 3)`` of driving frames; returns ``(N, H', W', 3)`` uint8."""
        ...

    def preload(self) -> None:
        """Load now whatever the engine would load on first use (models, kernels): a worker calls it
        at start-up, so that its first job does not wait for it."""
        ...

    def warm_up(self, state: Any, driving: np.ndarray) -> None:
        """Advance the state over a chunk of driving frames as ``animate`` would, rendering nothing."""
        ...

    def state_to_dict(self, state: Any) -> dict[str, Any]:
        """The state as plain data (see the module's docstring)."""
        ...

    def state_from_dict(self, data: dict[str, Any]) -> Any:
        """A state rebuilt from ``state_to_dict``'s output; ``StateError`` if it is not one of ours."""
        ...


def check_state_dict(data: Any, engine: str, version: int) -> dict[str, Any]:
    """``data`` if it is a state dict of ``engine`` at ``version``, else a ``StateError`` saying why."""
    if not isinstance(data, dict):
        raise StateError(f"the saved {engine} state is not a dict of plain data")
    if data.get("engine") != engine:
        raise StateError(f"the saved state belongs to the {data.get('engine')!r} engine, not to {engine!r}")
    if data.get("version") != version:
        raise StateError(
            f"the saved {engine} state has format version {data.get('version')!r}; "
            f"this version reads {version}"
        )
    return data


# The face toolkit registers a matcher here: given the source and an iterator of driving frames
# (all at the engine's frame size) it returns the index of the driving frame whose pose is closest.
BestFrameFinder = Callable[[np.ndarray, Any], int]
