"""Starting ``iter_frames`` at a frame index gives exactly the frames a full decode gives there."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.video.stream
import numpy as np
import pytest
from PIL import Image

from animatica.errors import MediaError
from animatica.media import seek
from animatica.media.reader import iter_frames


def _picture(index: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A frame that differs from its neighbours (colour and a moving block), so B-frames are used."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = (40 + (index * 37) % 180, 40 + (index * 71) % 180, 40 + (index * 13) % 180)
    top, left = (index * 3) % (height - 8), (index * 5) % (width - 8)
    image[top : top + 8, left : left + 8] = 255
    return image


def _encode(
    path: Path,
    frames: int,
    codec: str = "libx264",
    container_format: str | None = None,
    *,
    options: dict[str, str] | None = None,
    stamps: list[int] | None = None,
    rate: int = 25,
    rotation: int = 0,
) -> Path:
    """Encode ``frames`` pictures; ``stamps`` gives each frame's pts in milliseconds (variable rate)."""
    pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        time_base = Fraction(1, 1000) if stamps is not None else Fraction(1, rate)
        stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(_picture(index), format="rgb24")
            frame.pts = stamps[index] if stamps is not None else index
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


_GOP = {"g": "12", "sc_threshold": "0"}


def _remux_shifted(source: Path, target: Path, frames: int) -> Path:
    """Copy an MP4 with every timestamp moved ``frames`` frames earlier.

    The frames pushed before time 0 stay in the file (their keyframe is needed) but an edit list
    hides them, so the demuxer marks them discarded: what stream-copy trimming produces.
    """
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        shift = round(frames / (stream.average_rate * stream.time_base))
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = copy
            out.mux(packet)
    return target


def _irregular_stamps(frames: int) -> list[int]:
    """Millisecond timestamps with uneven gaps, like a phone dropping frames under load."""
    gaps = np.random.default_rng(7).choice([33, 33, 34, 40, 67, 100], size=frames - 1)
    return [0, *np.cumsum(gaps).tolist()]


def _make(kind: str, folder: Path) -> Path:
    if kind == "mp4":
        return _encode(folder / "a.mp4", 48, options=_GOP)
    if kind == "mov":
        return _encode(folder / "a.mov", 48, options=_GOP)
    if kind == "webm":
        return _encode(folder / "a.webm", 40, "libvpx-vp9", "webm", options={"g": "12"})
    if kind == "avi":
        return _encode(folder / "a.avi", 40, "mpeg4", "avi", options={"g": "12"})
    if kind == "gif":
        return _encode(folder / "a.gif", 20, "gif", "gif", rate=10)
    if kind == "png":
        frames = folder / "frames"
        frames.mkdir()
        for index in range(15):
            Image.fromarray(_picture(index)).save(frames / f"{index:05d}.png")
        return frames
    if kind == "mp4-edit-list":
        return _remux_shifted(_encode(folder / "full.mp4", 48, options=_GOP), folder / "cut.mp4", 5)
    if kind == "mp4-late-first-pts":
        return _encode(folder / "late.mp4", 40, options=_GOP, stamps=[1000 + 40 * i for i in range(40)])
    if kind == "mp4-vfr":
        return _encode(folder / "vfr.mp4", 40, options={**_GOP, "bf": "0"}, stamps=_irregular_stamps(40))
    if kind == "mp4-vfr-bframes":
        return _encode(folder / "vfrb.mp4", 40, options=_GOP, stamps=_irregular_stamps(40))
    if kind == "webm-vfr":
        return _encode(
            folder / "vfr.webm", 40, "libvpx-vp9", "webm", options={"g": "12"}, stamps=_irregular_stamps(40)
        )
    if kind == "mp4-rotated":
        return _encode(folder / "rot.mp4", 30, options=_GOP, rotation=90)
    raise AssertionError(kind)


def _keyframe_indices(path: Path) -> list[int]:
    if path.is_dir():
        return []
    with av.open(str(path)) as container:
        return [index for index, frame in enumerate(container.decode(video=0)) if frame.key_frame]


def _starts(count: int, keys: list[int]) -> list[int]:
    starts = {0, 1, count - 1, count, count + 5}
    for key in keys[1:3] + keys[-1:]:
        starts |= {key - 1, key, key + 1}
    if not keys[1:]:
        starts |= {count // 2 - 1, count // 2, count // 2 + 1}
    return sorted(start for start in starts if start >= 0)


# Each kind with the number of frames a full decode must give (the edit list hides 5 of 48).
FRAME_COUNTS = {
    "mp4": 48,
    "mov": 48,
    "webm": 40,
    "avi": 40,
    "gif": 20,
    "png": 15,
    "mp4-edit-list": 43,
    "mp4-late-first-pts": 40,
    "mp4-vfr": 40,
    "mp4-vfr-bframes": 40,
    "webm-vfr": 40,
    "mp4-rotated": 30,
}


@pytest.mark.parametrize("kind", sorted(FRAME_COUNTS))
def test_start_gives_the_same_frames_as_a_full_decode(tmp_path: Path, kind: str) -> None:
    path = _make(kind, tmp_path)
    everything = list(iter_frames(path))
    assert len(everything) == FRAME_COUNTS[kind]
    if kind == "png":
        assert all(np.array_equal(frame, _picture(i)) for i, frame in enumerate(everything))
    keys = _keyframe_indices(path)
    if kind in ("mp4", "mov", "webm", "avi", "mp4-edit-list"):
        assert len(keys) >= 3, keys  # the file really has keyframes to seek to
    for start in _starts(len(everything), keys):
        got = list(iter_frames(path, start))
        expected = everything[start:]
        assert len(got) == len(expected), (start, len(got), len(expected))
        for offset, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert a.dtype == np.uint8 and np.array_equal(a, b), (start, start + offset)


class _Counter:
    """Wraps the reader's decode hook and counts the frames that come out of the decoder."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.frames = 0
        original = seek.decode_video

        def counting(
            container: av.container.InputContainer, stream: av.video.stream.VideoStream
        ) -> Iterator[av.VideoFrame]:
            for frame in original(container, stream):
                self.frames += 1
                yield frame

        monkeypatch.setattr(seek, "decode_video", counting)

    def decoded(self, path: Path, start: int) -> tuple[int, int]:
        """(frames yielded, frames decoded) for one read from ``start``."""
        self.frames = 0
        yielded = sum(1 for _ in iter_frames(path, start))
        return yielded, self.frames


@pytest.mark.parametrize(
    ("name", "codec", "fmt"), [("long.mp4", "libx264", None), ("long.webm", "libvpx-vp9", "webm")]
)
def test_a_late_start_decodes_only_from_the_keyframe_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, codec: str, fmt: str
) -> None:
    path = _encode(tmp_path / name, 240, codec, fmt, options=_GOP if codec == "libx264" else {"g": "12"})
    counter = _Counter(monkeypatch)
    yielded, decoded = counter.decoded(path, 0)
    assert (yielded, decoded) == (240, 240)  # the counter sees every decoded frame
    yielded, decoded = counter.decoded(path, 220)
    assert yielded == 20
    # One GOP (12 frames) before the start, the 20 frames themselves and the handful the plan
    # decodes to find where frame 0 shows; a decode from the beginning would need 240.
    assert decoded < 20 + 12 + 16, decoded


def test_gif_decodes_from_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each GIF frame is drawn over the previous one: no later frame can be decoded on its own.
    path = _encode(tmp_path / "a.gif", 20, "gif", "gif", rate=10)
    assert seek.plan_seek(path, 15) is None
    assert _Counter(monkeypatch).decoded(path, 15) == (5, 20)


def test_variable_rate_with_b_frames_decodes_from_the_start(tmp_path: Path) -> None:
    path = _make("mp4-vfr-bframes", tmp_path)
    assert seek.plan_seek(path, 30) is None  # neither a grid nor packets in display order


def test_variable_rate_without_b_frames_is_scanned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _make("mp4-vfr", tmp_path)
    plan = seek.plan_seek(path, 30)
    assert plan is not None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stamps = [frame.pts for frame in container.decode(stream)]
    assert plan.target == stamps[30]
    yielded, decoded = _Counter(monkeypatch).decoded(path, 30)
    assert yielded == 10 and decoded < 30


@pytest.mark.parametrize("wrong", ["target_between_frames", "entry_after_target"])
def test_a_plan_that_does_not_hold_falls_back_to_a_full_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wrong: str
) -> None:
    path = _make("mp4", tmp_path)
    everything = list(iter_frames(path))
    real = seek.plan_seek(path, 30)
    assert real is not None and real.target is not None
    if wrong == "target_between_frames":
        bad = seek.SeekPlan(real.target + 1, real.entry_points)
    else:
        bad = seek.SeekPlan(real.target, (real.target + 10_000,))
    monkeypatch.setattr(seek, "plan_seek", lambda _path, _start: bad)
    counter = _Counter(monkeypatch)
    got = list(iter_frames(path, 30))
    assert len(got) == len(everything) - 30
    assert all(np.array_equal(a, b) for a, b in zip(got, everything[30:], strict=True))
    assert counter.frames >= len(everything)  # it did decode from the beginning


def test_negative_start_is_refused(tmp_path: Path) -> None:
    path = _make("mp4", tmp_path)
    with pytest.raises(ValueError, match="start must be 0 or more"):
        iter_frames(path, -1)


def test_start_does_not_accept_an_image(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "x.jpg")
    with pytest.raises(MediaError, match="is an image"):
        iter_frames(tmp_path / "x.jpg", 3)


def test_damage_after_the_start_names_the_global_frame_index(tmp_path: Path) -> None:
    path = _encode(tmp_path / "v.mp4", 120, options=_GOP)
    data = bytearray(path.read_bytes())
    middle = len(data) * 2 // 3
    data[middle : middle + 1500] = np.random.default_rng(0).bytes(1500)
    path.write_bytes(bytes(data))
    with pytest.raises(MediaError, match=r"v\.mp4: frame (\d+) could not be decoded") as caught:
        for _ in iter_frames(path, 40):
            pass
    index = int(caught.value.args[0].split("frame ")[1].split(" ")[0])
    assert 40 <= index < 120
