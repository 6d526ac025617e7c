"""A plan's frame-rate limit: a video faster than the plan allows (the free plan: 30 fps) is refused
when it is uploaded, for an animation and a face swap alike (the swap API's refusal is in
tests/service/test_swaps.py), so no job of it is ever planned; a 29.97 fps clip is not "over 30",
and a paid plan takes 60 fps."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from animatica.media.limits import MediaLimits
from animatica.service.errors import Invalid
from animatica.service.plans import get_plan
from animatica.service.uploads.validate import validate_video


def _clip(path: Path, rate: Fraction, frames: int = 6) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            frame = np.full((64, 64, 3), 40 * index % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_the_free_plan_refuses_videos_over_30_fps_and_paid_plans_take_60(tmp_path: Path) -> None:
    fast = _clip(tmp_path / "fast.mp4", Fraction(60))
    with pytest.raises(Invalid) as refused:
        validate_video(fast, "The video (fast.mp4)", get_plan("free"), MediaLimits())
    assert str(refused.value) == (
        "The video (fast.mp4) runs at 60 fps; your plan allows up to 30 fps, export it at 30 fps or less "
        "and upload it again."
    )
    assert validate_video(fast, "The video", get_plan("basic"), MediaLimits()).fps == 60
    ntsc = _clip(tmp_path / "ntsc.mp4", Fraction(30000, 1001))
    assert validate_video(ntsc, "The video", get_plan("free"), MediaLimits()).fps == pytest.approx(
        29.97, 1e-3
    )
