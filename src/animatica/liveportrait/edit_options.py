"""What one edit of a still portrait asks for, checked once for the CLI, the API and the web form.

Kept free of torch so that the web process can check a request without loading the networks.

Angles are changes in degrees added to the photo's own head pose; ``eyes`` and ``lips`` are target
opening ratios (eyelid gap over eye width, lip gap over mouth width, as measured on landmarks), or
None to leave that part of the face as it is. The ranges are a little wider than the public
LivePortrait retargeting panel's sliders (pitch and roll 15 degrees, yaw 25, ratios 0 to 0.8):
beyond them the implicit keypoints leave what the networks saw in training and faces tear.
"""

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from animatica.errors import AnimaticaError

ANGLE_LIMITS = {"pitch": 20.0, "yaw": 30.0, "roll": 20.0}  # +- degrees
RATIO_LIMITS = (0.0, 0.8)


class InvalidEdit(AnimaticaError):
    """An edit value out of range or not a number; the message names the field and its range."""


@dataclass(frozen=True)
class PortraitEdit:
    pitch: float = 0.0  # degrees, nodding up / down, in the sense the motion extractor measures
    yaw: float = 0.0  # degrees, turning left / right
    roll: float = 0.0  # degrees, tilting in the picture plane
    eyes: float | None = None  # target eye-open ratio, None keeps the photo's eyes
    lips: float | None = None  # target lip-open ratio, None keeps the photo's mouth

    def __post_init__(self) -> None:
        for name, limit in ANGLE_LIMITS.items():
            value = _number(name, getattr(self, name))
            if abs(value) > limit:
                raise InvalidEdit(f"{name} must be between -{limit:g} and {limit:g} degrees, not {value:g}.")
            object.__setattr__(self, name, value)
        low, high = RATIO_LIMITS
        for name in ("eyes", "lips"):
            raw = getattr(self, name)
            if raw is None:
                continue
            value = _number(name, raw)
            if not low <= value <= high:
                raise InvalidEdit(
                    f"{name} must be an opening ratio between {low:g} and {high:g}, not {value:g}."
                )
            object.__setattr__(self, name, value)

    @property
    def is_identity(self) -> bool:
        """True when the edit changes nothing: the photo's own reconstruction comes back."""
        unturned = self.pitch == 0 and self.yaw == 0 and self.roll == 0
        return unturned and self.eyes is None and self.lips is None

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "PortraitEdit":
        """From stored job options or a request's fields; unknown keys are ignored."""
        fields = {name: row[name] for name in ("pitch", "yaw", "roll", "eyes", "lips") if name in row}
        for name in ("eyes", "lips"):
            if fields.get(name) == "":
                fields[name] = None  # an untouched form field
        return cls(**fields)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidEdit(f"{name} must be a number.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidEdit(f"{name} must be a number, not {value!r}.") from None
    if not math.isfinite(number):
        raise InvalidEdit(f"{name} must be a finite number.")
    return number
