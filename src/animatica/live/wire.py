"""The binary messages of a live session, shared by the server, the Python client and the page.

Every binary message starts with one type byte. The numbers after it are little-endian, so
the page's ``DataView`` (``getUint32(1, true)`` …) reads exactly what ``struct`` writes here.

- video frame up (client → server): ``B type=1``, ``I seq``, ``d captured_ms``, image bytes.
- video frame down (server → client): ``B type=1``, ``I seq``, ``d captured_ms`` (echoed),
  ``f engine_ms``, image bytes. The client computes the delay on its own clock
  (now − captured_ms), so the two machines' clocks never need to agree.
- audio chunk up: ``B type=2``, ``d started_ms``, the bytes of one MediaRecorder chunk.

Up and down video frames share a type byte and differ only in the ``engine_ms`` field, which
the bytes alone cannot reveal: whoever reads a video frame says which direction it reads.
Everything that arrives is untrusted, so a message that is short, of an unknown type, carries
a time that is not a finite number, or an empty or oversized payload is refused with a
``WireError`` rather than handed on.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from animatica.errors import AnimaticaError

VIDEO = 1
AUDIO = 2
# A 512x512 JPEG is well under 200 KiB; a payload beyond this is not a camera frame.
MAX_PAYLOAD = 8 * 1024 * 1024

_VIDEO_UP = struct.Struct("<BId")
_VIDEO_DOWN = struct.Struct("<BIdf")
_AUDIO = struct.Struct("<Bd")
_MAX_SEQ = 2**32 - 1


class WireError(AnimaticaError):
    """A live message that does not follow the format."""


@dataclass(frozen=True)
class VideoMessage:
    seq: int
    captured_ms: float
    payload: bytes
    engine_ms: float | None = None  # only on frames going down


@dataclass(frozen=True)
class AudioMessage:
    started_ms: float
    payload: bytes


def pack_video(seq: int, captured_ms: float, payload: bytes, engine_ms: float | None = None) -> bytes:
    """A video frame message; with ``engine_ms`` it is a frame going down (server → client)."""
    if not 0 <= seq <= _MAX_SEQ:
        raise WireError(f"a frame's sequence number must fit in 32 bits, got {seq}")
    _check_time("captured_ms", captured_ms)
    if engine_ms is None:
        return _VIDEO_UP.pack(VIDEO, seq, captured_ms) + payload
    _check_time("engine_ms", engine_ms)
    return _VIDEO_DOWN.pack(VIDEO, seq, captured_ms, engine_ms) + payload


def pack_audio(started_ms: float, payload: bytes) -> bytes:
    _check_time("started_ms", started_ms)
    return _AUDIO.pack(AUDIO, started_ms) + payload


def unpack_video(data: bytes, *, down: bool = False, max_payload: int = MAX_PAYLOAD) -> VideoMessage:
    """Read a video frame; ``down`` for one sent by the server (with ``engine_ms``)."""
    layout = _VIDEO_DOWN if down else _VIDEO_UP
    _check_header(data, layout, VIDEO, "video frame")
    if down:
        _, seq, captured_ms, engine_ms = layout.unpack_from(data)
        _check_time("engine_ms", engine_ms)
    else:
        _, seq, captured_ms = layout.unpack_from(data)
        engine_ms = None
    _check_time("captured_ms", captured_ms)
    payload = _payload(data, layout.size, max_payload, "video frame")
    return VideoMessage(seq=seq, captured_ms=captured_ms, payload=payload, engine_ms=engine_ms)


def unpack_audio(data: bytes, *, max_payload: int = MAX_PAYLOAD) -> AudioMessage:
    _check_header(data, _AUDIO, AUDIO, "audio chunk")
    _, started_ms = _AUDIO.unpack_from(data)
    _check_time("started_ms", started_ms)
    return AudioMessage(
        started_ms=started_ms, payload=_payload(data, _AUDIO.size, max_payload, "audio chunk")
    )


def unpack(data: bytes, *, down: bool = False, max_payload: int = MAX_PAYLOAD) -> VideoMessage | AudioMessage:
    """Any live message, by its type byte."""
    if not data:
        raise WireError("an empty live message: expected a type byte")
    kind = data[0]
    if kind == VIDEO:
        return unpack_video(data, down=down, max_payload=max_payload)
    if kind == AUDIO:
        return unpack_audio(data, max_payload=max_payload)
    raise WireError(f"unknown live message type {kind}; expected {VIDEO} (video) or {AUDIO} (audio)")


def _check_header(data: bytes, layout: struct.Struct, kind: int, what: str) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(f"a {what} must be bytes, got {type(data).__name__}")
    if len(data) < layout.size:
        raise WireError(f"a {what} needs a {layout.size}-byte header; the message has {len(data)} bytes")
    if data[0] != kind:
        raise WireError(f"expected a {what} (type {kind}), got message type {data[0]}")


def _payload(data: bytes, offset: int, max_payload: int, what: str) -> bytes:
    size = len(data) - offset
    if size == 0:
        raise WireError(f"the {what} carries no data after its header")
    if size > max_payload:
        raise WireError(f"the {what} is {size:,} bytes; at most {max_payload:,} are accepted")
    return bytes(data[offset:])


def _check_time(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise WireError(f"{name} must be a finite number, got {value}")
