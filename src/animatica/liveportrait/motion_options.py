"""How driving motion is applied (`MotionOptions`), checked without torch.

The command line, the job options of the service and the engine all check a region and a driving
multiplier here, so the web process can refuse a bad request without loading the networks, and a
value means the same thing wherever it is given.
"""

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

from animatica.errors import AnimaticaError

Region = Literal["all", "exp", "pose", "lips", "eyes"]
REGIONS: tuple[str, ...] = ("all", "exp", "pose", "lips", "eyes")
# The driving multiplier scales the motion away from the source (``x_s + (x_d - x_s) * k``): below
# 0 it turns the motion round, and well above 1 the keypoints leave what the networks were trained
# on and faces tear, so the range stops at 3.
MULTIPLIER_LIMITS = (0.0, 3.0)


def check_region(region: str) -> str:
    """``region`` if it is one of `REGIONS` (``lip`` is accepted for ``lips``), else a user error."""
    region = "lips" if region == "lip" else region
    if region not in REGIONS:
        raise AnimaticaError(f"unknown animation region {region!r}; use one of {', '.join(REGIONS)}")
    return region


def check_multiplier(value: float) -> float:
    """``value`` as a float if it lies in `MULTIPLIER_LIMITS`, else a user error naming the range."""
    low, high = MULTIPLIER_LIMITS
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise AnimaticaError(f"the driving multiplier must be between {low:g} and {high:g}, not {value}")
    return number


@dataclass(frozen=True)
class MotionOptions:
    """How driving motion is applied; the defaults are the public implementation's command line's."""

    relative: bool = True
    region: str = "all"
    expression_friendly: bool = True  # the multiplier step ("expression-friendly" driving option)
    stitching: bool = True
    driving_multiplier: float = 1.0
    eye_retargeting: bool = False
    lip_retargeting: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "region", check_region(self.region))
        object.__setattr__(self, "driving_multiplier", check_multiplier(self.driving_multiplier))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
