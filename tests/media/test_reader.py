from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from animatica.errors import MediaError
from animatica.media.limits import MediaLimits
from animatica.media.probe import probe
from animatica.media.reader import iter_chunks, iter_frames, read_image
from animatica.media.writer import VideoWriter

if TYPE_CHECKING:
    from conftest import Kit


def _close(a: np.ndarray, colour: tuple[int, int, int], tol: int = 6) -> bool:
    return bool(np.all(np.abs(a.reshape(-1, 3).astype(int) - np.array(colour)) <= tol))


# --- still images -----------------------------------------------------------------------------


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[:, :10] = (255, 0, 0, 255)  # opaque red
    rgba[:, 10:] = (0, 0, 255, 0)  # fully transparent blue
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.shape == (10, 20, 3) and image.dtype == np.uint8
    assert _close(image[:, :10], (255, 0, 0), 0)
    assert _close(image[:, 10:], (255, 255, 255), 0)


def test_half_transparent_pixels_blend_with_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:] = (0, 0, 0, 128)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.webp", lossless=True)
    assert _close(read_image(tmp_path / "a.webp"), (127, 127, 127), 2)


def test_palette_with_transparency(tmp_path: Path) -> None:
    palette_image = Image.new("P", (8, 8), 1)
    palette_image.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    palette_image.info["transparency"] = 0
    palette_image.paste(0, (0, 0, 4, 8))
    palette_image.save(tmp_path / "p.png", transparency=0)
    image = read_image(tmp_path / "p.png")
    assert _close(image[:, :4], (255, 255, 255), 0)
    assert _close(image[:, 4:], (0, 200, 0), 0)


def test_grayscale_and_16_bit(tmp_path: Path) -> None:
    Image.fromarray(np.full((5, 6), 90, np.uint8), "L").save(tmp_path / "g.png")
    assert _close(read_image(tmp_path / "g.png"), (90, 90, 90), 0)
    deep = np.full((5, 6), 65535 // 2, np.uint16)
    Image.fromarray(deep).save(tmp_path / "g16.png")
    assert _close(read_image(tmp_path / "g16.png"), (127, 127, 127), 1)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:10, :10] = 255  # white block at the stored image's top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90° clockwise
    Image.fromarray(pixels).save(tmp_path / "o.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "o.jpg")
    assert image.shape == (40, 20, 3)
    # Rotating clockwise moves the top-left corner to the top-right.
    assert image[:8, -8:].mean() > 200
    assert image[:8, :8].mean() < 50


def test_truncated_jpeg(tmp_path: Path) -> None:
    noise = np.random.default_rng(3).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="damaged or incomplete"):
        read_image(tmp_path / "cut.jpg")


def test_bomb_refused_by_read_image(tmp_path: Path, kit: Kit) -> None:
    with pytest.raises(MediaError, match="larger than the limit"):
        read_image(kit.png_with_header_size(tmp_path / "bomb.png", 30_000, 30_000))


def test_video_as_image_gives_its_first_frame(tmp_path: Path, kit: Kit) -> None:
    image = read_image(kit.write_video(tmp_path / "v.mp4", frames=5))
    assert image.shape == (48, 64, 3)
    assert _close(image[8:, 8:], kit.frame_colour(0))


# --- videos and frame folders -----------------------------------------------------------------


def test_mp4_frames_in_order_with_colours(sample_mp4: Path, kit: Kit) -> None:
    frames = list(iter_frames(sample_mp4))
    assert len(frames) == 30
    for index, frame in enumerate(frames):
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        assert _close(frame[8:, 8:], kit.frame_colour(index)), index


@pytest.mark.parametrize(
    ("name", "codec", "fmt"),
    [("a.webm", "libvpx-vp9", "webm"), ("a.gif", "gif", "gif"), ("a.avi", "mpeg4", "avi")],
)
def test_other_inputs_decode(tmp_path: Path, kit: Kit, name: str, codec: str, fmt: str) -> None:
    path = kit.write_video(tmp_path / name, frames=12, rate=10, codec=codec, container_format=fmt)
    frames = list(iter_frames(path))
    assert len(frames) == 12
    tol = 50 if codec == "gif" else 8  # this GIF stores 3-3-2 bit colour
    for index, frame in enumerate(frames):
        mean = frame[16:40, 16:56].reshape(-1, 3).mean(axis=0)
        assert np.all(np.abs(mean - kit.frame_colour(index)) <= tol), (index, mean)


def test_display_rotation_is_applied(tmp_path: Path, kit: Kit) -> None:
    path = kit.write_video(tmp_path / "r.mp4", frames=3, width=64, height=48, rotation=90)
    frame = next(iter_frames(path))
    assert frame.shape == (64, 48, 3)
    # 90° counter-clockwise moves the white top-left marker to the bottom-left.
    assert frame[-3:, :3].mean() > 200
    assert frame[:3, :3].mean() < 200


def test_png_folder_natural_order(tmp_path: Path) -> None:
    for index in (0, 1, 2, 10, 11):
        Image.new("RGB", (8, 6), (index * 10, 0, 0)).save(tmp_path / f"f{index}.png")
    reds = [int(frame[0, 0, 0]) for frame in iter_frames(tmp_path)]
    assert reds == [0, 10, 20, 100, 110]


def test_png_folder_size_mismatch(tmp_path: Path) -> None:
    Image.new("RGB", (8, 6)).save(tmp_path / "00000.png")
    Image.new("RGB", (8, 7)).save(tmp_path / "00001.png")
    frames = iter_frames(tmp_path)
    next(frames)
    with pytest.raises(MediaError, match=r"00001\.png is 8x7"):
        next(frames)


def test_iter_frames_refuses_an_image(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "x.jpg")
    with pytest.raises(MediaError, match="is an image"):
        iter_frames(tmp_path / "x.jpg")


def test_truncated_video_fails_before_any_frame(tmp_path: Path, kit: Kit) -> None:
    full = kit.write_video(tmp_path / "full.mp4", frames=60, faststart=True)
    data = full.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(MediaError, match="truncated"):
        iter_frames(tmp_path / "cut.mp4")


def test_frame_limit_while_decoding(tmp_path: Path) -> None:
    # A live WebM declares no length, so the probe cannot count it; the reader enforces the limit.
    from tests.media.hostile import write_live_webm

    path = write_live_webm(tmp_path / "v.webm", seconds=2)  # 20 frames
    frames = iter_frames(path, limits=MediaLimits(max_video_frames=10))
    with pytest.raises(MediaError, match="more than 10 frames"):
        list(frames)


def test_colours_survive_a_write_read_round_trip(tmp_path: Path) -> None:
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (230, 230, 230), (20, 20, 20)]
    with VideoWriter(tmp_path / "c.mp4", 5) as writer:
        for colour in colours:
            writer.write(np.full((32, 32, 3), colour, np.uint8))
    for colour, frame in zip(colours, iter_frames(tmp_path / "c.mp4"), strict=True):
        assert _close(frame, colour, 4), (colour, frame[16, 16])


def test_streaming_does_not_accumulate_frames(tmp_path: Path, kit: Kit) -> None:
    # Decode -> chunk -> encode with sound, as the pipeline does, for a 24 s clip.
    path = kit.write_video(tmp_path / "long.mp4", frames=600, width=64, height=64, audio_seconds=24.0)
    frame_bytes = 64 * 64 * 3
    tracemalloc.start()
    try:
        count = 0
        with VideoWriter(tmp_path / "copy.mp4", 25, audio_from=path) as writer:
            for chunk in iter_chunks(iter_frames(path), 8):
                writer.write_chunk(chunk)
                count += chunk.shape[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 600
    # Keeping every decoded frame alive costs megabytes (measured: about 2.4 MB for the frames
    # alone); a streaming loop holds about one chunk, a frame and a little sound.
    assert peak < 60 * frame_bytes, peak
    assert probe(tmp_path / "copy.mp4").frame_count == 600


def test_iter_chunks_shapes() -> None:
    frames = (np.full((4, 5, 3), i, np.uint8) for i in range(10))
    chunks = list(iter_chunks(frames, 4))
    assert [c.shape for c in chunks] == [(4, 4, 5, 3), (4, 4, 5, 3), (2, 4, 5, 3)]
    assert [int(c[0, 0, 0, 0]) for c in chunks] == [0, 4, 8]
    with pytest.raises(ValueError, match="at least 1"):
        list(iter_chunks(iter([]), 0))


def test_damage_in_the_middle_names_the_frame(tmp_path: Path, kit: Kit) -> None:
    path = kit.write_video(tmp_path / "v.mp4", frames=100, width=128, height=96)  # index at the end
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 2000] = np.random.default_rng(0).bytes(2000)
    path.write_bytes(bytes(data))
    decoded = 0
    with pytest.raises(MediaError, match=r"v\.mp4: frame \d+ could not be decoded"):
        for _ in iter_frames(path):
            decoded += 1
    assert 0 < decoded < 100


def test_png_folder_with_a_bad_later_frame(tmp_path: Path) -> None:
    Image.new("RGB", (8, 6)).save(tmp_path / "00000.png")
    (tmp_path / "00001.png").write_text("<html><body>oops</body></html>")
    frames = iter_frames(tmp_path)
    next(frames)
    with pytest.raises(MediaError, match=r"00001\.png is an HTML page"):
        next(frames)


# --- the caller's frame limit, held on the frames decoded --------------------------------------


def test_max_frames_stops_decoding_at_the_limit(tmp_path: Path, kit: Kit) -> None:
    from animatica.media.reader import FrameLimitExceeded

    # WebM declares no frame count, so only decoding can hold the limit.
    path = kit.write_video(
        tmp_path / "v.webm", frames=12, rate=10, codec="libvpx-vp9", container_format="webm"
    )
    decoded = 0
    with pytest.raises(FrameLimitExceeded, match="more than 10 frames"):
        for _ in iter_frames(path, max_frames=10):
            decoded += 1
    assert decoded == 10
    assert len(list(iter_frames(path, max_frames=12))) == 12
    # The limit counts from the start of the video, also when decoding starts later (a segment).
    with pytest.raises(FrameLimitExceeded):
        list(iter_frames(path, start=8, max_frames=10))
    with pytest.raises(ValueError, match="at least 1"):
        iter_frames(path, max_frames=0)


def test_max_frames_of_a_frame_folder(tmp_path: Path) -> None:
    from animatica.media.reader import FrameLimitExceeded

    for index in range(5):
        Image.new("RGB", (8, 6)).save(tmp_path / f"{index:05d}.png")
    assert len(list(iter_frames(tmp_path, max_frames=5))) == 5
    with pytest.raises(FrameLimitExceeded, match="more than 4 frames"):
        next(iter_frames(tmp_path, max_frames=4))  # before the first frame is read


def test_decoding_stops_where_frames_outlast_the_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.media.hostile import write_lying_webm

    from animatica.media import probe as probe_module

    path = write_lying_webm(tmp_path / "lying.webm", seconds=40, declared=5)
    # As for a file the probe cannot seek in: its look at the end is skipped, decoding must notice.
    monkeypatch.setattr(probe_module, "_check_complete", lambda *args: None)
    assert probe(path).duration == 5.0
    decoded = 0
    with pytest.raises(MediaError, match="runs past the length its header declares"):
        for _ in iter_frames(path):
            decoded += 1
    assert decoded <= 60  # 5 s at 10 fps and the tolerance, not the 400 frames the file holds
