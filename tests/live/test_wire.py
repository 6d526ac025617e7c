"""The live messages' byte layout (mirrored by the page's script) and their refusal of bad input."""

import math
import struct

import pytest

from animatica.live import wire
from animatica.live.wire import WireError


def test_video_up_layout_is_little_endian_type_seq_time_payload() -> None:
    data = wire.pack_video(7, 1234.5, b"JPEG")
    assert data == b"\x01" + (7).to_bytes(4, "little") + struct.pack("<d", 1234.5) + b"JPEG"
    message = wire.unpack_video(data)
    assert (message.seq, message.captured_ms, message.payload, message.engine_ms) == (
        7,
        1234.5,
        b"JPEG",
        None,
    )


def test_video_down_carries_engine_ms_after_the_echoed_time() -> None:
    data = wire.pack_video(2**32 - 1, 9.25, b"\xff\xd8", engine_ms=12.5)
    assert data[:17] == struct.pack("<BIdf", 1, 2**32 - 1, 9.25, 12.5)
    message = wire.unpack(data, down=True)
    assert isinstance(message, wire.VideoMessage)
    assert (message.seq, message.captured_ms, message.engine_ms, message.payload) == (
        2**32 - 1,
        9.25,
        12.5,
        b"\xff\xd8",
    )


def test_audio_round_trip() -> None:
    data = wire.pack_audio(100.0, b"opus")
    assert data == b"\x02" + struct.pack("<d", 100.0) + b"opus"
    message = wire.unpack(data)
    assert message == wire.AudioMessage(started_ms=100.0, payload=b"opus")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"\x01\x00\x00", "13-byte header"),
        (b"\x02\x00", "9-byte header"),
        (b"\x07" + b"\x00" * 20, "unknown live message type 7"),
        (wire.pack_video(1, 0.0, b"x")[:13], "no data"),
        (b"\x01" + struct.pack("<Id", 1, math.nan) + b"x", "finite"),
        (b"\x02" + struct.pack("<d", math.inf) + b"x", "finite"),
    ],
)
def test_malformed_messages_are_refused(data: bytes, fragment: str) -> None:
    with pytest.raises(WireError, match=fragment):
        wire.unpack(data)


def test_a_down_frame_needs_its_longer_header() -> None:
    with pytest.raises(WireError, match="17-byte header"):
        wire.unpack_video(wire.pack_video(1, 0.0, b"abc"), down=True)


def test_oversized_payload_is_refused() -> None:
    data = wire.pack_video(1, 0.0, b"x" * 101)
    assert wire.unpack_video(data, max_payload=101).payload == b"x" * 101
    with pytest.raises(WireError, match="at most 100"):
        wire.unpack_video(data, max_payload=100)


def test_wrong_type_byte_for_the_function() -> None:
    with pytest.raises(WireError, match="expected a video frame"):
        wire.unpack_video(wire.pack_audio(0.0, b"x" * 20))


def test_packing_refuses_what_the_reader_would() -> None:
    with pytest.raises(WireError, match="32 bits"):
        wire.pack_video(2**32, 0.0, b"x")
    with pytest.raises(WireError, match="finite"):
        wire.pack_video(1, math.nan, b"x")
