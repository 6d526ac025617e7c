from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import pytest
from PIL import Image

from animatica.errors import MediaError
from animatica.media.probe import probe
from animatica.media.reader import iter_frames
from animatica.media.writer import (
    FrameFolderWriter,
    VideoWriter,
    as_frame_rate,
    check_writable,
    open_writer,
    output_kind,
)

if TYPE_CHECKING:
    from conftest import Kit


def _frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(count)
    return [rng.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _streams(path: Path) -> dict[str, dict[str, object]]:
    with av.open(str(path)) as container:
        found: dict[str, dict[str, object]] = {}
        for stream in container.streams:
            seconds = float(stream.duration * stream.time_base) if stream.duration else None
            found[stream.type] = {"codec": stream.codec_context.name, "seconds": seconds}
            if stream.type == "video":
                found["video"].update(
                    pix_fmt=stream.codec_context.pix_fmt,
                    rate=stream.average_rate,
                    frames=stream.frames,
                    size=(stream.width, stream.height),
                )
        return found


def test_round_trip_with_sound(tmp_path: Path, sample_mp4: Path) -> None:
    # The driving clip: 30 frames at 25 fps (1.2 s) and 1.6 s of sound to be trimmed.
    info = probe(sample_mp4)
    output = tmp_path / "out" / "result.mp4"  # the missing parent folder is created
    with open_writer(output, info.frame_rate or 25, audio_from=sample_mp4) as writer:
        assert isinstance(writer, VideoWriter)
        for frame in iter_frames(sample_mp4):
            writer.write(frame)
    streams = _streams(output)
    video, audio = streams["video"], streams["audio"]
    assert video["codec"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert video["frames"] == 30 and video["size"] == (64, 48) and video["rate"] == 25
    assert audio["codec"] == "aac"
    assert audio["seconds"] == pytest.approx(1.2, abs=0.03)
    assert len(list(iter_frames(output))) == 30
    assert sorted(os.listdir(output.parent)) == ["result.mp4"]  # no temporary files left


def test_faststart_puts_the_index_first(tmp_path: Path, kit: Kit) -> None:
    with VideoWriter(tmp_path / "f.mp4", 25) as writer:
        for frame in _frames(10):
            writer.write(frame)
    boxes = kit.top_level_boxes(tmp_path / "f.mp4")
    assert boxes[0] == "ftyp"
    assert boxes.index("moov") < boxes.index("mdat")


def test_rational_frame_rate_is_exact(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "ntsc.mp4", 30000 / 1001) as writer:
        writer.write_chunk(np.stack(_frames(6)))
    info = probe(tmp_path / "ntsc.mp4")
    assert info.frame_rate == Fraction(30000, 1001)
    assert info.frame_count == 6


def test_as_frame_rate() -> None:
    assert as_frame_rate(29.97002997002997) == Fraction(30000, 1001)
    assert as_frame_rate(23.976023976023978) == Fraction(24000, 1001)
    assert as_frame_rate(12.5) == Fraction(25, 2)
    assert as_frame_rate(Fraction(30000, 1001)) == Fraction(30000, 1001)
    with pytest.raises(ValueError, match="positive"):
        as_frame_rate(0)


def test_odd_size_repeats_the_last_row_and_column(tmp_path: Path) -> None:
    frame = np.zeros((49, 65, 3), np.uint8)
    frame[:, -8:] = 255  # white right edge, the repeated column must be white too
    frame[-8:, :] = 255
    with VideoWriter(tmp_path / "odd.mp4", 10) as writer:
        writer.write(frame)
        writer.write(frame)
    assert _streams(tmp_path / "odd.mp4")["video"]["size"] == (66, 50)
    decoded = next(iter_frames(tmp_path / "odd.mp4"))
    assert decoded[:, -1].mean() > 240 and decoded[-1, :].mean() > 240
    assert decoded[:30, :30].mean() < 15


@pytest.mark.parametrize(("name", "codec"), [("a.mov", "h264"), ("a.mkv", "h264")])
def test_mov_and_mkv_outputs(tmp_path: Path, sample_mp4: Path, name: str, codec: str) -> None:
    with open_writer(tmp_path / name, 25, audio_from=sample_mp4) as writer:
        for frame in _frames(5):
            writer.write(frame)
    info = probe(tmp_path / name)
    assert info.kind == "video" and info.has_audio and info.frame_count == 5
    assert _streams(tmp_path / name)["video"]["codec"] == codec


def test_sound_from_a_wav_shorter_than_the_video(tmp_path: Path, kit: Kit) -> None:
    wav = tmp_path / "short.wav"
    with av.open(str(wav), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=22050)
        stream.layout = "mono"
        samples = (kit.tone(0.4, 22050, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 22050
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with VideoWriter(tmp_path / "v.mp4", 10, audio_from=wav) as writer:
        for frame in _frames(10):  # 1 s of video
            writer.write(frame)
    audio = _streams(tmp_path / "v.mp4")["audio"]
    assert audio["codec"] == "aac"
    assert audio["seconds"] == pytest.approx(0.4, abs=0.03)


def test_sound_that_starts_late_stays_in_sync(tmp_path: Path, kit: Kit) -> None:
    driving = kit.write_video(tmp_path / "late.mp4", frames=25, audio_seconds=0.5, audio_delay=0.4)
    with VideoWriter(tmp_path / "v.mp4", 25, audio_from=driving) as writer:
        for frame in _frames(25):  # 1 s of video
            writer.write(frame)
    with av.open(str(tmp_path / "v.mp4")) as container:
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    rate = 44100
    assert len(samples) == pytest.approx(0.9 * rate, abs=0.03 * rate)  # silence + tone, up to 0.9 s
    assert np.sqrt(np.mean(samples[: int(0.35 * rate)] ** 2)) < 0.01  # silent before 0.4 s
    assert np.sqrt(np.mean(samples[int(0.45 * rate) : int(0.85 * rate)] ** 2)) > 0.1  # the tone after


def test_audio_from_a_silent_video_gives_no_audio_stream(tmp_path: Path, kit: Kit) -> None:
    silent = kit.write_video(tmp_path / "silent.mp4", frames=3)
    with VideoWriter(tmp_path / "v.mp4", 25, audio_from=silent) as writer:
        writer.write(_frames(1)[0])
    assert "audio" not in _streams(tmp_path / "v.mp4")


def test_png_folder_output_is_lossless(tmp_path: Path) -> None:
    frames = _frames(4, 17, 23)  # odd sizes are fine for PNG
    target = tmp_path / "frames"
    with open_writer(str(target) + "/", 25) as writer:
        assert isinstance(writer, FrameFolderWriter)
        writer.write_chunk(np.stack(frames))
    assert sorted(os.listdir(target)) == ["00000.png", "00001.png", "00002.png", "00003.png"]
    for original, decoded in zip(frames, iter_frames(target), strict=True):
        assert np.array_equal(original, decoded)
    assert sorted(os.listdir(tmp_path)) == ["frames"]


def test_png_folder_replaces_an_earlier_series_only(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    for index in range(5):
        Image.new("RGB", (4, 4)).save(target / f"{index:05d}.png")
    with FrameFolderWriter(target) as writer:
        writer.write(_frames(1, 8, 8)[0])
    assert sorted(os.listdir(target)) == ["00000.png"]
    (target / "notes.txt").write_text("mine")
    with pytest.raises(MediaError, match="already holds other files"):
        FrameFolderWriter(target)


def test_output_kind() -> None:
    assert output_kind("a/b/result.mp4") == "video"
    assert output_kind("clip.MOV") == "video"
    assert output_kind("frames/") == "frames"
    assert output_kind("frames") == "frames"
    with pytest.raises(MediaError, match=r"unknown output type '\.xyz'"):
        output_kind("result.xyz")


def test_unwritable_outputs(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(MediaError, match="cannot create the folder"):
        check_writable(blocker / "out.mp4")  # its parent is a file
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(MediaError, match="is an existing folder"):
        check_writable(tmp_path / "dir.mp4")
    with pytest.raises(MediaError, match="is an existing file"):
        check_writable(str(blocker) + "/")
    with pytest.raises(MediaError, match="cannot create the folder"):
        VideoWriter(blocker / "out.mp4", 25)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(MediaError, match="cannot write to"):
            check_writable(locked / "out.mp4")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("name", ["broken.mp4", "broken/"])
def test_exception_mid_write_leaves_nothing(tmp_path: Path, sample_mp4: Path, name: str) -> None:
    output = str(tmp_path / name)
    with (
        pytest.raises(RuntimeError, match="engine failed"),
        open_writer(output, 25, audio_from=sample_mp4) as w,
    ):
        for index, frame in enumerate(_frames(8)):
            w.write(frame)
            if index == 5:
                raise RuntimeError("engine failed")
    assert os.listdir(tmp_path) == []


def test_no_frames_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no frames were produced"), VideoWriter(tmp_path / "e.mp4", 25):
        pass
    assert os.listdir(tmp_path) == []


def test_frame_shape_is_checked(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="differs from the first frame"),
        VideoWriter(tmp_path / "s.mp4", 25) as w,
    ):
        w.write(np.zeros((8, 8, 3), np.uint8))
        w.write(np.zeros((8, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"), VideoWriter(tmp_path / "t.mp4", 25) as w:
        w.write(np.zeros((8, 8, 3), np.float32))
    assert os.listdir(tmp_path) == []
