"""What the pipeline would otherwise look up in the settings comes with the request: the media
limits and the folder of named checkpoints."""

import shutil
from pathlib import Path

import pytest

from animatica.errors import CheckpointError, MediaError
from animatica.media.limits import MediaLimits
from animatica.pipeline import AnimationRequest, animate
from animatica.settings import get_settings


@pytest.fixture
def strict_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings that would refuse both inputs, had the pipeline read them."""
    monkeypatch.setenv("ANIMATICA_MAX_IMAGE_PIXELS", "1")
    monkeypatch.setenv("ANIMATICA_MAX_VIDEO_FRAMES", "1")
    get_settings.cache_clear()


@pytest.mark.usefixtures("strict_environment")
def test_the_request_limits_hold_on_both_inputs(
    tiny_fomm_checkpoint: Path, test_image: Path, test_video: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out.mp4"

    def request(**extra: object) -> AnimationRequest:
        return AnimationRequest(test_image, test_video, output, checkpoint=str(tiny_fomm_checkpoint), **extra)

    with pytest.raises(MediaError, match="12 frames, more than the limit of 11"):
        animate(request(limits=MediaLimits(max_video_frames=11)))
    with pytest.raises(MediaError, match="100x120 pixels, is larger than the limit of 11,999"):
        animate(request(limits=MediaLimits(max_image_pixels=11_999)))
    assert not output.exists()
    assert animate(request(limits=MediaLimits(max_image_pixels=12_000, max_video_frames=12))).frames == 12
    assert animate(request()).frames == 12  # the default limits, whatever the environment says


def test_a_bare_checkpoint_name_is_looked_up_in_the_request_folder(
    tiny_fomm_checkpoint: Path, test_image: Path, test_video: Path, tmp_path: Path, animatica_home: Path
) -> None:
    folder = tmp_path / "named"
    folder.mkdir()
    shutil.copy(tiny_fomm_checkpoint, folder / "mine.pth.tar")
    (animatica_home / "checkpoints").mkdir()
    shutil.copy(tiny_fomm_checkpoint, animatica_home / "checkpoints" / "home.pth.tar")
    output = tmp_path / "out.mp4"

    def request(name: str) -> AnimationRequest:
        return AnimationRequest(test_image, test_video, output, checkpoint=name, checkpoints_dir=folder)

    assert animate(request("mine")).frames == 12
    with pytest.raises(CheckpointError, match="checkpoint home not found"):  # the settings' folder is unread
        animate(request("home"))
