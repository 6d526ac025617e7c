"""The Python live client: a session opened and run against a real server (uvicorn, the WebSocket,
the landmarks engine on a real face), every frame either animated or counted as dropped, the
recording handed to its job; and the sender's back-pressure, which drops a frame rather than
queue it."""

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select
from tests.live.serving import access_token, camera_frames, serve, write_portrait

from animatica.db.models import Job
from animatica.live.client import LiveClient, LiveClientError, _paced, _Run, run_blocking
from animatica.live.stats import LiveStats
from animatica.live.wire import VideoMessage, unpack_video
from animatica.settings import Settings

JSON_KEYS = {"engine", "fps", "delay_ms_p50", "delay_ms_p95", "dropped", "frames", "seconds", "size", "cpu"}


@pytest.fixture
def face(tmp_path: Path) -> Path:
    return write_portrait(tmp_path / "astronaut.png")


@pytest.fixture
def camera() -> list[bytes]:
    """The astronaut's face moved a little from frame to frame, as a camera's JPEGs."""
    return camera_frames((0, 4, 8, 12, 8, 4))


@pytest.fixture
def server(settings: Settings) -> Iterator[tuple[str, Any]]:
    """The app served by uvicorn on a free local port: (base URL, the app)."""
    with serve(settings) as served:
        yield served


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_recorded_session_over_a_real_server(
    server: tuple[str, Any], face: Path, camera: list[bytes]
) -> None:
    base, app = server
    client = LiveClient(base, token=access_token(base, "alice"))
    opened = client.create_session(face, record=True)
    assert opened["engine"] == "landmarks" and opened["size"] == 256 and opened["record"] is True
    seen: list[tuple[VideoMessage, float]] = []
    summary = client.run(
        camera, lambda message, delay: seen.append((message, delay)), fps=10, max_in_flight=1
    )

    assert set(summary) >= JSON_KEYS and summary["engine"] == "landmarks" and summary["size"] == 256
    assert summary["frames"] == len(seen) >= 1
    assert summary["frames"] + summary["dropped"] == len(camera)  # each frame animated or counted
    seqs = [message.seq for message, _delay in seen]
    assert seqs == sorted(set(seqs)) and set(seqs) <= set(range(1, len(camera) + 1))
    for message, delay in seen:
        assert delay >= 0 and message.payload[:2] == b"\xff\xd8"
        with Image.open(io.BytesIO(message.payload)) as picture:
            assert picture.size == (256, 256)
    assert summary["end"] == "stopped"
    with app.state.ctx.db.read() as session:
        job = session.scalar(select(Job).where(Job.id == summary["recording_job"]))
        assert job is not None and job.kind == "live_recording" and job.driving_name == "live session"


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_valid_credentials_the_client_is_refused(server: tuple[str, Any], face: Path) -> None:
    base, _app = server
    with pytest.raises(LiveClientError, match="401"):
        LiveClient(base).create_session(face)
    client = LiveClient(base, token=access_token(base, "bob"))
    client.create_session(face)
    client.token = "forged"
    with pytest.raises(LiveClientError, match="403"):
        client.run([b"\xff\xd8"], fps=10)


class _SilentSocket:
    """A server that takes every frame and never answers."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, data: bytes) -> None:
        self.sent.append(data)


def test_a_due_frame_is_dropped_while_too_many_wait_for_an_answer() -> None:
    run = _Run(LiveStats("landmarks"), None, _outcome())
    frames = [(seq, float(seq), bytes([0xFF, 0xD8, seq])) for seq in range(1, 6)]
    sink = _SilentSocket()
    run_blocking(run.send(sink, _aiter(frames), 2))
    assert [unpack_video(data).seq for data in sink.sent] == [1, 2]
    assert (run.sent, run.not_sent, run.in_flight) == (2, 3, 2)
    run.answer(2)  # one answer settles every earlier frame: the server animates the newest
    run_blocking(run.send(sink, _aiter([(6, 6.0, b"\xff\xd8"), (7, 7.0, b"\xff\xd8")]), 2))
    assert [unpack_video(data).seq for data in sink.sent] == [1, 2, 6, 7]  # 3 to 5 were never sent
    assert (run.sent, run.not_sent, run.in_flight) == (4, 3, 2)


class _Clock:
    """Milliseconds that pass only when the sender sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds * 1000


def test_a_frame_whose_successor_is_already_due_is_dropped_not_sent_late() -> None:
    clock = _Clock()

    def clip() -> Iterator[bytes]:
        for index in range(6):
            if index == 2:
                clock.now += 45.0  # the camera stalls: frame 3 arrives at +55 ms, 35 ms late
            yield bytes([index])

    run = _Run(LiveStats("landmarks"), None, _outcome())

    async def collect() -> list[tuple[int, float, bytes]]:
        return [item async for item in _paced(clip(), 100.0, None, run, clock=clock, sleep=clock.sleep)]

    sent = run_blocking(collect())
    # By +55 ms frames 3 to 5 (due +20, +30, +40) each have a successor already due: dropped, not sent
    # late. Frame 6 (due +50) is less than a frame time late, so it goes, with its due time.
    assert [(seq, due) for seq, due, _frame in sent] == [(1, 1000.0), (2, 1010.0), (6, 1050.0)]
    assert [frame for _seq, _due, frame in sent] == [b"\x00", b"\x01", b"\x05"]
    assert run.not_sent == 3


def test_the_first_frame_is_sent_however_long_it_took_to_arrive() -> None:
    clock = _Clock()

    def slow_start() -> Iterator[bytes]:
        clock.now += 5000.0  # a camera that takes seconds to open
        yield b"first"
        yield b"second"

    run = _Run(LiveStats("landmarks"), None, _outcome())

    async def collect() -> list[tuple[int, float, bytes]]:
        return [item async for item in _paced(slow_start(), 10.0, None, run, clock=clock, sleep=clock.sleep)]

    assert [(seq, due, frame) for seq, due, frame in run_blocking(collect())] == [
        (1, 6000.0, b"first"),
        (2, 6100.0, b"second"),
    ]
    assert run.not_sent == 0


async def _aiter(items: list[Any]) -> Any:
    for item in items:
        yield item


def _outcome() -> Any:
    from animatica.live.client import Outcome

    return Outcome()
