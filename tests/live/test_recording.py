"""The live recorder: the sent JPEGs kept as they are at their times, the microphone's sound copied
into the same Matroska file at its start, and no file under the real name until it is finished."""

from pathlib import Path

import av
import numpy as np
import pytest
from tests.live.recording_media import SIZE, chunks, jpeg, opus_webm, record

from animatica.live.recording import Recorder, RecordingError


def _packets(path: Path, kind: str) -> list[tuple[int, bytes]]:
    """(time in ms, bytes) of every packet of the file's ``kind`` stream."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [
            (round(float(packet.pts * packet.time_base * 1000)), bytes(packet))
            for packet in container.demux(stream)
            if packet.size
        ]


def test_frames_are_kept_byte_for_byte_at_their_times(tmp_path: Path) -> None:
    path = tmp_path / "session.mkv"
    recorder = Recorder(path, SIZE)
    frames = [jpeg(level) for level in (0, 80, 160, 240)]
    times = [5000.0, 5033.4, 5100.0, 5180.6]  # uneven, as a live session's are
    for frame, time_ms in zip(frames, times, strict=True):
        assert recorder.add_frame(frame, time_ms)
    assert recorder.frames == 4
    assert recorder.finish() == path
    assert _packets(path, "video") == [(0, frames[0]), (33, frames[1]), (100, frames[2]), (181, frames[3])]
    with av.open(str(path)) as container:
        assert not container.streams.audio
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("mjpeg", SIZE, SIZE)
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert [int(np.median(picture)) for picture in decoded] == pytest.approx([0, 80, 160, 240], abs=2)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["session.mkv"]


def test_two_frames_in_one_millisecond_stay_in_order(tmp_path: Path) -> None:
    path = record(tmp_path / "session.mkv", [0.0, 10.2, 10.4, 9.0, 50.0])
    assert [time for time, _data in _packets(path, "video")] == [0, 10, 11, 12, 50]


def test_the_microphone_sound_is_copied_in_at_its_start(tmp_path: Path) -> None:
    sound = opus_webm(1.0)
    path = record(tmp_path / "session.mkv", [1000.0 + 40 * i for i in range(30)], sound, 1250.0)
    (tmp_path / "reference.webm").write_bytes(sound)
    original = _packets(tmp_path / "reference.webm", "audio")
    copied = _packets(path, "audio")
    assert [data for _time, data in copied] == [data for _time, data in original]  # not re-encoded
    assert [time for time, _data in copied] == [time + 250 for time, _data in original]
    assert _packets(path, "video")[0][0] == 0
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["reference.webm", "session.mkv"]


def test_sound_that_started_before_the_camera_moves_the_frames_after_it(tmp_path: Path) -> None:
    sound = opus_webm(1.0)
    (tmp_path / "reference.webm").write_bytes(sound)
    first_sound = _packets(tmp_path / "reference.webm", "audio")[0][0]  # Opus starts a little early
    path = record(tmp_path / "session.mkv", [2000.0, 2040.0, 2080.0], sound, 1700.0)
    assert _packets(path, "audio")[0][0] == 0  # no time before the file's start
    assert [time for time, _data in _packets(path, "video")] == [t - first_sound for t in (300, 340, 380)]


def test_unreadable_sound_leaves_the_frames_recorded(tmp_path: Path) -> None:
    path = tmp_path / "session.mkv"
    recorder = Recorder(path, SIZE)
    recorder.add_frame(jpeg(10), 0.0)
    recorder.add_audio(0.0, b"not a webm file at all" * 20)
    recorder.add_frame(jpeg(20), 40.0)
    assert recorder.finish() == path
    assert len(_packets(path, "video")) == 2
    with av.open(str(path)) as container:
        assert not container.streams.audio
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["session.mkv"]


def test_a_session_without_frames_leaves_nothing(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "session.mkv", SIZE)
    for chunk in chunks(opus_webm(0.2)):
        recorder.add_audio(0.0, chunk)
    assert recorder.finish() is None
    assert list(tmp_path.iterdir()) == []


def test_an_unfinished_recording_is_never_under_the_real_name(tmp_path: Path) -> None:
    path = tmp_path / "session.mkv"
    recorder = Recorder(path, SIZE)
    for index in range(5):
        recorder.add_frame(jpeg(index), 40.0 * index)
    recorder.add_audio(0.0, opus_webm(0.2))
    # As a crash would leave it: only hidden partial files, which nothing reads as a recording.
    assert not path.exists()
    assert all(entry.name.startswith(".session.mkv.") for entry in tmp_path.iterdir())
    recorder.abort()
    assert list(tmp_path.iterdir()) == []
    assert not recorder.add_frame(jpeg(1), 500.0) and recorder.finish() is None


def test_only_jpeg_frames_with_finite_times_are_recorded(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "session.mkv", SIZE)
    with pytest.raises(RecordingError, match="JPEG"):
        recorder.add_frame(b"RIFF\x00\x00\x00\x00WEBPVP8 ", 0.0)
    with pytest.raises(RecordingError, match="finite"):
        recorder.add_frame(jpeg(1), float("nan"))
    with pytest.raises(RecordingError, match="finite"):
        recorder.add_audio(float("inf"), b"x")
    recorder.abort()
