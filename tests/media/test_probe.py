from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import pytest
from PIL import Image

from animatica.errors import MediaError
from animatica.media.limits import MediaLimits
from animatica.media.probe import probe, require_image, require_video

if TYPE_CHECKING:
    from conftest import Kit


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_images_are_identified_by_content_not_name(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "picture.mp4"  # misleading name on purpose
    Image.fromarray(np.full((30, 50, 3), 120, np.uint8)).save(path, format=fmt)
    info = probe(path)
    assert (info.kind, info.width, info.height, info.frame_count) == ("image", 50, 30, 1)
    assert info.fps is None and not info.has_audio


def test_exif_orientation_swaps_reported_size(tmp_path: Path) -> None:
    path = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.new("RGB", (40, 20), "red").save(path, exif=exif)
    info = probe(path)
    assert (info.width, info.height) == (20, 40)


def test_mp4_with_rational_rate_and_audio(tmp_path: Path, kit: Kit) -> None:
    path = kit.write_video(
        tmp_path / "clip.bin",
        frames=24,
        rate=Fraction(30000, 1001),
        container_format="mp4",
        audio_seconds=0.5,
    )
    info = probe(path)
    assert info.kind == "video"
    assert (info.width, info.height) == (64, 48)
    assert info.frame_rate == Fraction(30000, 1001)
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert info.frame_count == 24 and info.frame_count_exact
    assert info.duration == pytest.approx(24 * 1001 / 30000, abs=0.01)
    assert info.has_audio


@pytest.mark.parametrize(
    ("name", "codec", "fmt", "exact"),
    [
        ("clip.webm", "libvpx-vp9", "webm", False),
        ("clip.mkv", "libx264", "matroska", False),
        ("clip.avi", "mpeg4", "avi", True),
        ("clip.mov", "libx264", "mov", True),
        ("clip.gif", "gif", "gif", True),
    ],
)
def test_other_containers(tmp_path: Path, kit: Kit, name: str, codec: str, fmt: str, exact: bool) -> None:
    path = kit.write_video(tmp_path / name, frames=20, rate=10, codec=codec, container_format=fmt)
    info = probe(path)
    assert info.kind == "video" and (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(10.0)
    assert info.frame_count == 20
    assert info.frame_count_exact is exact
    assert not info.has_audio


def test_display_rotation_swaps_size(tmp_path: Path, kit: Kit) -> None:
    path = kit.write_video(tmp_path / "phone.mp4", frames=5, width=64, height=48, rotation=90)
    info = probe(path)
    assert (info.width, info.height) == (48, 64)


def test_png_folder(tmp_path: Path) -> None:
    for index in range(12):
        Image.new("RGB", (32, 16), (index, 0, 0)).save(tmp_path / f"frame{index}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    info = probe(tmp_path)
    assert (info.kind, info.width, info.height, info.frame_count, info.fps) == ("frames", 32, 16, 12, None)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        probe(tmp_path / "nope.mp4")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(MediaError, match="empty"):
        probe(path)


def test_random_bytes_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(np.random.default_rng(1).bytes(50_000))
    with pytest.raises(MediaError, match="not a readable image or video"):
        probe(path)


def test_html_page_named_png(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_text("<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body></body></html>")
    with pytest.raises(MediaError, match="HTML page"):
        probe(path)


def test_text_file_is_not_an_ansi_video(tmp_path: Path) -> None:
    path = tmp_path / "readme.txt"
    path.write_text("just some words\n" * 50)
    with pytest.raises(MediaError, match="text file"):
        probe(path)


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_mp4(tmp_path: Path, kit: Kit, faststart: bool) -> None:
    full = kit.write_video(tmp_path / "full.mp4", frames=50, audio_seconds=2.0, faststart=faststart)
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"incomplete|truncated"):
        probe(cut)


def test_truncated_webm(tmp_path: Path, kit: Kit) -> None:
    full = kit.write_video(tmp_path / "full.webm", frames=40, codec="libvpx-vp9", container_format="webm")
    cut = tmp_path / "cut.webm"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated"):
        probe(cut)


def test_truncated_gif(tmp_path: Path, kit: Kit) -> None:
    full = kit.write_video(tmp_path / "full.gif", frames=20, rate=10, codec="gif", container_format="gif")
    cut = tmp_path / "cut.gif"
    cut.write_bytes(full.read_bytes()[:-200])
    with pytest.raises(MediaError, match="truncated"):
        probe(cut)


def test_audio_only_file_has_no_video(tmp_path: Path, kit: Kit) -> None:
    path = kit.write_audio_only(tmp_path / "voice.mp4")
    with pytest.raises(MediaError, match="no video stream"):
        probe(path)


def test_decompression_bomb_header(tmp_path: Path, kit: Kit) -> None:
    path = kit.png_with_header_size(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(MediaError, match="larger than the limit"):
        probe(path)


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path, kit: Kit) -> None:
    # The header claims 200x200 but holds almost no pixel data: decoding would fail as
    # "damaged"; the size limit must be reported instead.
    path = kit.png_with_header_size(tmp_path / "big.png", 200, 200)
    with pytest.raises(MediaError, match="200x200 pixels"):
        probe(path, MediaLimits(max_image_pixels=10_000))


def test_pixel_limit_applies_to_video_frames(tmp_path: Path, kit: Kit) -> None:
    path = kit.write_video(tmp_path / "v.mp4", frames=3)
    with pytest.raises(MediaError, match="64x48 pixels"):
        probe(path, MediaLimits(max_image_pixels=1000))


def test_frame_limit(tmp_path: Path, kit: Kit) -> None:
    path = kit.write_video(tmp_path / "long.mp4", frames=11)
    with pytest.raises(MediaError, match="more than the limit of 10"):
        probe(path, MediaLimits(max_video_frames=10))


def test_damaged_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "half.png"
    noise = np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="damaged or incomplete"):
        probe(path)


def test_folder_without_frames(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(MediaError, match="without PNG frames"):
        probe(tmp_path)


def test_image_as_driving_video(tmp_path: Path) -> None:
    path = tmp_path / "face.png"
    Image.new("RGB", (8, 8)).save(path)
    with pytest.raises(MediaError, match="is an image; the driving input must be a video"):
        require_video(probe(path))


def test_video_as_strict_source(tmp_path: Path, kit: Kit) -> None:
    info = probe(kit.write_video(tmp_path / "v.mp4", frames=3))
    assert require_video(info) is info
    with pytest.raises(MediaError, match="must be a single image"):
        require_image(info)


def test_container_without_any_frames(tmp_path: Path) -> None:
    path = tmp_path / "nothing.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    with pytest.raises(MediaError, match="no video stream"):
        probe(path)


# --- lengths come from the stream, not the header ----------------------------------------------


def test_webm_whose_header_understates_its_length_is_refused(tmp_path: Path) -> None:
    from tests.media.hostile import write_lying_webm

    path = write_lying_webm(tmp_path / "short.webm", seconds=40, declared=5)
    with pytest.raises(MediaError, match=r"runs past the length its header declares .*40\.\d+ s.*5\.00 s"):
        probe(path)


def test_packets_are_counted_whatever_the_header_says(tmp_path: Path) -> None:
    from tests.media.hostile import write_live_webm, write_lying_webm

    from animatica.media.probe import count_packets

    lying = count_packets(write_lying_webm(tmp_path / "lying.webm", seconds=40, declared=5))
    assert lying.frames == 400 and lying.seconds == pytest.approx(40.0, abs=0.15)
    # A live-recorded WebM declares no length at all; the probe cannot tell, the count can.
    live = tmp_path / "live.webm"
    write_live_webm(live, seconds=12)
    info = probe(live)
    assert info.duration is None and info.frame_count is None
    assert count_packets(live).frames == 120


def test_honest_files_with_sound_are_not_taken_for_overlong(tmp_path: Path, kit: Kit) -> None:
    # Sound longer than the video, or starting late, must not look like data past the end.
    cases = [
        ("a.mp4", "libx264", "mp4", "aac", 0.0),
        ("b.mp4", "libx264", "mp4", "aac", 1.5),
        ("c.mkv", "libx264", "matroska", "aac", 1.0),
        ("d.webm", "libvpx-vp9", "webm", "libopus", 0.0),
        ("e.ts", "libx264", "mpegts", "aac", 0.0),
    ]
    for name, codec, fmt, audio_codec, delay in cases:
        rate = 48000 if audio_codec == "libopus" else 44100
        path = kit.write_video(
            tmp_path / name,
            frames=40,
            codec=codec,
            container_format=fmt,
            audio_seconds=3.0,
            audio_codec=audio_codec,
            audio_rate=rate,
            audio_delay=delay,
        )
        assert probe(path).duration == pytest.approx(1.6, abs=0.05), name
