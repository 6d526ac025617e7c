"""The animation kind with a gate in front of every segment, for tests that must act while a segment
is certainly running (kill its worker, say) rather than hoping to be quicker than it.

Workers import this module through ``job_kinds``; it replaces the animation kind in their registry.
A segment then waits while the file named by ``ANIMATICA_TEST_SEGMENT_GATE`` exists, and animates as
usual once the test removes it, so the frames are those of an ungated run.
"""

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from animatica.jobs.animation import ANIMATION, Segmented
from animatica.jobs.kinds import register

GATE = "ANIMATICA_TEST_SEGMENT_GATE"


class GatedSegments(Segmented):
    def segment(self, *args: Any, **kwargs: Any) -> int:
        gate = Path(os.environ.get(GATE, ""))
        while gate.name and gate.exists():
            time.sleep(0.05)
        return super().segment(*args, **kwargs)


GATED = register(replace(ANIMATION, segmented=GatedSegments()))
