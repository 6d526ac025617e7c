"""Media limits are arguments: what a caller passes is obeyed, whatever the environment says."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from animatica.errors import MediaError
from animatica.media.limits import DEFAULT_LIMITS, MediaLimits
from animatica.media.probe import TooManyPixels, probe, probe_frames, probe_image, probe_video
from animatica.media.reader import iter_frames, read_image
from animatica.settings import Settings, get_settings

if TYPE_CHECKING:
    from conftest import Kit


@pytest.fixture
def strict_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings that would refuse everything, had the readers read them."""
    monkeypatch.setenv("ANIMATICA_MAX_IMAGE_PIXELS", "1")
    monkeypatch.setenv("ANIMATICA_MAX_VIDEO_FRAMES", "1")
    get_settings.cache_clear()
    assert get_settings().max_image_pixels == 1


def _picture(path: Path, width: int = 40, height: int = 30) -> Path:
    Image.fromarray(np.full((height, width, 3), 120, np.uint8)).save(path)
    return path


def test_the_defaults_are_the_settings_defaults() -> None:
    defaults = Settings()
    assert MediaLimits() == DEFAULT_LIMITS
    assert MediaLimits(defaults.max_image_pixels, defaults.max_video_frames) == DEFAULT_LIMITS
    mine = Settings(max_image_pixels=123, max_video_frames=45)
    assert MediaLimits.from_settings(mine) == MediaLimits(max_image_pixels=123, max_video_frames=45)


@pytest.mark.usefixtures("strict_environment")
def test_probing_obeys_the_limits_passed_not_the_environment(tmp_path: Path, kit: Kit) -> None:
    picture = _picture(tmp_path / "p.png")  # 1200 pixels
    video = kit.write_video(tmp_path / "v.mp4", frames=5)  # 64x48
    assert probe(picture).width == 40  # the defaults accept, though the environment says 1 pixel
    assert probe(video).frame_count == 5
    assert probe_image(picture, MediaLimits(max_image_pixels=1200)).height == 30
    with pytest.raises(TooManyPixels, match="40x30 pixels, is larger than the limit of 1,199"):
        probe(picture, MediaLimits(max_image_pixels=1199))
    with pytest.raises(TooManyPixels, match="64x48 pixels"):
        probe_video(video, MediaLimits(max_image_pixels=64 * 48 - 1))
    with pytest.raises(MediaError, match="more than the limit of 4"):
        probe(video, MediaLimits(max_video_frames=4))
    assert probe(video, MediaLimits(max_video_frames=5)).frame_count == 5


@pytest.mark.usefixtures("strict_environment")
def test_a_frame_folder_obeys_the_limits_passed(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        _picture(folder / f"{index:05d}.png")
    assert probe_frames(folder).frame_count == 3
    assert len(list(iter_frames(folder))) == 3
    with pytest.raises(MediaError, match="3 frames, more than the limit of 2"):
        probe(folder, MediaLimits(max_video_frames=2))
    with pytest.raises(TooManyPixels, match="40x30 pixels"):
        list(iter_frames(folder, limits=MediaLimits(max_image_pixels=1000)))


@pytest.mark.usefixtures("strict_environment")
def test_reading_obeys_the_limits_passed_not_the_environment(tmp_path: Path, kit: Kit) -> None:
    picture = _picture(tmp_path / "p.png")
    assert read_image(picture).shape == (30, 40, 3)
    with pytest.raises(TooManyPixels, match="larger than the limit of 1,000"):
        read_image(picture, MediaLimits(max_image_pixels=1000))
    video = kit.write_video(tmp_path / "v.mp4", frames=6)
    assert len(list(iter_frames(video))) == 6
    assert read_image(video, MediaLimits(max_video_frames=6)).shape == (48, 64, 3)
    with pytest.raises(MediaError, match="more than the limit of 5"):
        iter_frames(video, limits=MediaLimits(max_video_frames=5))
