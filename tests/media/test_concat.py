"""Joining H.264 parts by copying packets: order and timing at the seams, the sound, damaged parts."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import pytest

from animatica.errors import MediaError
from animatica.media.concat import concat_parts, inspect_part
from animatica.media.writer import VideoWriter

if TYPE_CHECKING:
    from conftest import Kit

FPS = Fraction(25)


def _parts(kit: type[Kit], folder: Path, sizes: list[int], fps: Fraction = FPS) -> list[Path]:
    """Parts encoded as segments are, of frames coloured by their number in the whole video."""
    paths, first = [], 0
    for index, size in enumerate(sizes):
        path = folder / f"part{index}.mkv"
        with VideoWriter(path, fps) as writer:
            for frame in range(first, first + size):
                writer.write(kit.coloured_frame(frame, 64, 48))
        paths.append(path)
        first += size
    return paths


def _join(paths: list[Path], output: Path, fps: Fraction = FPS, audio: Path | None = None) -> int:
    return concat_parts([inspect_part(p, fps) for p in paths], output, fps, audio)


def _sound(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def test_parts_follow_one_another_frame_exact(kit: type[Kit], tmp_path: Path) -> None:
    fps = Fraction(30000, 1001)
    paths = _parts(kit, tmp_path, [7, 1, 5], fps)
    inspected = [inspect_part(p, fps) for p in paths]
    assert [p.frames for p in inspected] == [7, 1, 5]
    assert inspected[0].delay > 0  # B-frames: decoding runs ahead of showing
    output = tmp_path / "joined.mp4"
    assert concat_parts(inspected, output, fps) == 13
    with av.open(str(output)) as container:
        decoded = list(container.decode(video=0))
    assert [Fraction(f.pts) * f.time_base for f in decoded] == [i / fps for i in range(13)]
    for index, frame in enumerate(decoded):
        colour = frame.to_ndarray(format="rgb24")[24, 32].astype(int)
        assert np.abs(colour - kit.frame_colour(index)).max() <= 6, index
    boxes = kit.top_level_boxes(output)
    assert boxes.index("moov") < boxes.index("mdat")  # faststart: browsers play it while loading


def test_aac_sound_is_copied_untouched_and_cut_after_the_last_frame(
    kit: type[Kit], tmp_path: Path, sample_mp4: Path
) -> None:
    """``sample_mp4`` has 1.6 s of AAC under 1.2 s of video: the join keeps the first 1.2 s of it."""
    output = tmp_path / "joined.mp4"
    assert _join(_parts(kit, tmp_path, [12, 18]), output, audio=sample_mp4) == 30
    copied, original = _audio_packets(output), _audio_packets(sample_mp4)
    assert copied == original[: len(copied)]
    heard = _sound(output)
    assert round(1.2 * 44100) <= heard.shape[1] <= round(1.2 * 44100) + 1024
    assert np.array_equal(heard, _sound(sample_mp4)[:, : heard.shape[1]])


@pytest.mark.parametrize(("suffix", "codec"), [(".mkv", "aac"), (".mp4", "mp2"), (".mkv", "flac")])
def test_other_sound_is_encoded_to_aac_once(kit: type[Kit], tmp_path: Path, suffix: str, codec: str) -> None:
    """AAC in Matroska counts milliseconds, not samples; MP2 and FLAC are not what MP4 players play."""
    driving = kit.write_video(tmp_path / f"driving{suffix}", frames=30, audio_seconds=1.6, audio_codec=codec)
    output = tmp_path / "joined.mp4"
    assert _join(_parts(kit, tmp_path, [12, 18]), output, audio=driving) == 30
    with av.open(str(output)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    heard = _sound(output)
    assert round(1.2 * 44100) <= heard.shape[1] <= round(1.2 * 44100) + 1024
    assert np.abs(heard).max() > 0.2  # the tone, not silence


def test_sound_that_starts_late_starts_late_in_the_result(kit: type[Kit], tmp_path: Path) -> None:
    driving = kit.write_video(tmp_path / "late.mp4", frames=30, audio_seconds=0.6, audio_delay=0.5)
    output = tmp_path / "joined.mp4"
    _join(_parts(kit, tmp_path, [15, 15]), output, audio=driving)
    for path in (driving, output):
        with av.open(str(path)) as container:
            first = next(container.decode(audio=0))
            assert first.time is not None and abs(first.time - 0.5) < 0.03, path.name


@pytest.mark.parametrize("damage", ["missing", "cut short", "garbage", "MPEG-4 Part 2", "no keyframe first"])
def test_a_part_that_cannot_be_joined_is_refused_by_name(kit: type[Kit], tmp_path: Path, damage: str) -> None:
    (path,) = _parts(kit, tmp_path, [25])
    if damage == "missing":
        path.unlink()
    elif damage == "cut short":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4000))
    elif damage == "MPEG-4 Part 2":
        kit.write_video(path, frames=25, width=64, height=48, codec="mpeg4", container_format="matroska")
    else:
        _without_first_packet(path)
    with pytest.raises(MediaError, match=r"part0\.mkv"):
        inspect_part(path, FPS)


def _without_first_packet(path: Path) -> None:
    """Rewrite ``path`` without its first packet (its keyframe), keeping every other one as it is."""
    temp = path.with_name("temp.mkv")
    with av.open(str(path)) as source, av.open(str(temp), "w", format="matroska") as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for index, packet in enumerate(p for p in source.demux(video=0) if p.size):
            if index:
                packet.stream = stream
                target.mux(packet)
    temp.replace(path)


def test_a_failed_join_leaves_no_file(kit: type[Kit], tmp_path: Path) -> None:
    wide, narrow = _parts(kit, tmp_path, [5, 5])
    with VideoWriter(narrow, FPS) as writer:
        for index in range(5):
            writer.write(kit.coloured_frame(index, 32, 48))
    output = tmp_path / "out" / "joined.mp4"
    with pytest.raises(MediaError, match="encoded differently"):
        _join([wide, narrow], output)
    not_media = tmp_path / "driving.mp4"
    not_media.write_text("<html>502 Bad Gateway</html>")
    with pytest.raises(MediaError, match=r"driving\.mp4"):
        _join([wide], output, audio=not_media)
    assert list(output.parent.iterdir()) == []
