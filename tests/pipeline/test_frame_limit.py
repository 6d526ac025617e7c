"""The caller's frame limit (``max_frames``) holds on the driving frames the pipeline decodes."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from animatica.errors import AnimaticaError
from animatica.pipeline import AnimationRequest, animate


def _webm(path: Path, frames: int) -> Path:
    """A VP9 WebM: it declares no frame count, so only decoding can tell how many frames it has."""
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), index * 9, np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 10)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _request(
    source: Path, driving: Path, output: Path, checkpoint: Path, **extra: object
) -> AnimationRequest:
    return AnimationRequest(
        source=source, driving=driving, output=output, checkpoint=str(checkpoint), batch_size=2, **extra
    )


def test_decoding_past_max_frames_fails_and_leaves_nothing(
    tiny_fomm_checkpoint: Path, test_image: Path, tmp_path: Path
) -> None:
    driving = _webm(tmp_path / "drive.webm", frames=12)
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    batches: list[int] = []
    with pytest.raises(
        AnimaticaError, match=r"more than 5 frames .*more than this animation may use"
    ) as caught:
        animate(
            _request(test_image, driving, out_dir / "out.mp4", tiny_fomm_checkpoint, max_frames=5),
            on_progress=lambda progress: (
                batches.append(progress.done) if progress.stage == "animate" else None
            ),
        )
    assert str(tmp_path) not in str(caught.value)  # the job's error must not show server paths
    assert max(batches, default=0) <= 5  # it stopped at the limit, not at the end of the video
    assert list(out_dir.iterdir()) == []
    # At the limit the same clip animates in full.
    result = animate(_request(test_image, driving, out_dir / "out.mp4", tiny_fomm_checkpoint, max_frames=12))
    assert result.frames == 12


def test_an_indexed_video_over_max_frames_is_refused_before_any_work(
    tiny_fomm_checkpoint: Path, test_image: Path, test_video: Path, tmp_path: Path
) -> None:
    stages: list[str] = []
    with pytest.raises(AnimaticaError, match="more than 5 frames"):
        animate(
            _request(test_image, test_video, tmp_path / "out.mp4", tiny_fomm_checkpoint, max_frames=5),
            on_progress=lambda progress: stages.append(progress.stage),
        )
    assert stages == []  # the MP4's index gave the count: not even the engine was loaded
    assert not (tmp_path / "out.mp4").exists()
