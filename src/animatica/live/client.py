"""A live session over the network, from Python: what the Live page does, for scripts and benchmarks.

`LiveClient` opens a session with ``POST /api/v1/live/sessions`` and runs it over the
``/api/v1/live`` WebSocket (`animatica.live.wire`). The sender behaves like a camera with the
page's back-pressure: frame ``i`` is due ``i / fps`` after the start; when it is due and
``max_in_flight`` frames are already waiting for their animated answer, it is dropped (a later
answer settles every earlier frame, since the server animates only the newest), and a frame whose
successor is already due is dropped too. Nothing queues, so a slow server or network shows up as
drops and delay, never as a growing backlog.

Each frame carries its due time on this process's clock, the server echoes it with the animated
frame, and the delay is measured here when the answer arrives: capture to animated frame ready to
show, network both ways included, with no clock shared between the two machines.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np

from animatica.errors import AnimaticaError
from animatica.live.session import now_ms
from animatica.live.stats import LiveStats, cpu_summary
from animatica.live.wire import VideoMessage, pack_video, unpack_video

READY_SECONDS = 120.0  # the server loads the engine and prepares the portrait before "ready"
# After the last frame, the answers still in flight are waited for (the server always answers the
# newest frame it was sent, and that answer settles every earlier one); this only bounds a server
# that has stopped answering.
DRAIN_SECONDS = 60.0
END_SECONDS = 60.0  # the server finishes the session (a recording is handed to its job) in this time
QUALITY = 85

Frame = bytes | np.ndarray
T = TypeVar("T")


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end from synchronous code, also where this thread already runs an
    event loop (a notebook, or a caller inside another framework's loop): then on a thread of its
    own, since a thread can run only one loop at a time."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-client") as pool:
        return pool.submit(asyncio.run, coroutine).result()


class LiveClientError(AnimaticaError):
    """The server refused the session or ended it with an error."""


@dataclass
class Outcome:
    """What the server said while the session ran, beside the figures."""

    ready: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)
    server_stats: dict[str, Any] = field(default_factory=dict)


class LiveClient:
    """One server (``url``: ``http(s)://host:port``), authenticated by a Bearer ``token`` or by the
    page's session ``cookie`` (``name=value``), which the server accepts only with an ``origin``
    of its own."""

    def __init__(
        self, url: str, token: str | None = None, cookie: str | None = None, origin: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.cookie = cookie
        self.origin = origin
        self.outcome = Outcome()
        self.session: dict[str, Any] = {}

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookie:
            headers["Cookie"] = self.cookie
        if self.origin:
            headers["Origin"] = self.origin
        return headers

    def create_session(
        self,
        source: Path | None = None,
        *,
        source_job: str | None = None,
        engine: str = "landmarks",
        size: int = 256,
        fmt: str = "jpeg",
        record: bool = False,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Open a session for ``source`` (a picture file) or the picture of job ``source_job``; returns
        the server's answer (``id``, ``ws``, ``engine``, ``size``, ``format``, ``seconds_left``…)."""
        data = {"engine": engine, "size": str(size), "format": fmt, "record": "true" if record else "false"}
        if source_job:
            data["source_job"] = source_job
        files = None
        if source is not None:
            files = {"source": (Path(source).name, Path(source).read_bytes(), "application/octet-stream")}
        response = httpx.post(
            f"{self.url}/api/v1/live/sessions",
            headers=self._headers(),
            data=data,
            files=files,
            timeout=timeout,
        )
        if response.status_code != 201:
            raise LiveClientError(
                f"the server refused the live session ({response.status_code}): {_detail(response)}"
            )
        self.session = dict(response.json())
        return self.session

    def websocket_url(self, path: str | None = None) -> str:
        path = path or str(self.session.get("ws") or "")
        if not path:
            raise LiveClientError("open a session first (create_session)")
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        target = urlsplit(path)
        return urlunsplit((scheme, parts.netloc, target.path, target.query, ""))

    def run(
        self,
        frames: Iterable[Frame],
        on_frame: Callable[[VideoMessage, float], None] | None = None,
        *,
        fps: float | None = 30.0,
        max_in_flight: int = 2,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        """Send ``frames`` (JPEG bytes, or RGB arrays encoded here) paced at ``fps`` (None: as the
        source delivers them, a camera) until they end or ``seconds`` pass; ``on_frame(message,
        delay_ms)`` sees every animated frame. Returns the figures `animatica live --json` prints
        (``engine``, ``fps``, ``delay_ms_p50``, ``delay_ms_p95``, ``dropped``, ``frames``,
        ``seconds``…), measured on this side."""
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        return run_blocking(self._run(frames, on_frame, fps, max_in_flight, seconds))

    async def _run(
        self,
        frames: Iterable[Frame],
        on_frame: Callable[[VideoMessage, float], None] | None,
        fps: float | None,
        max_in_flight: int,
        seconds: float | None,
    ) -> dict[str, Any]:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        self.outcome = Outcome()
        engine = str(self.session.get("engine") or "")
        stats = LiveStats(engine)
        run = _Run(stats, on_frame, self.outcome)
        try:
            async with connect(
                self.websocket_url(),
                additional_headers=self._headers(),
                max_size=None,
                open_timeout=READY_SECONDS,
                close_timeout=5,
            ) as socket:
                await run.wait_ready(socket)
                receiver = asyncio.create_task(run.receive(socket))
                try:
                    await run.send(socket, _paced(frames, fps, seconds, run), max_in_flight)
                    await run.drain(DRAIN_SECONDS)
                    stats.finish()
                    await socket.send(json.dumps({"type": "stop"}))
                    await asyncio.wait_for(asyncio.shield(receiver), END_SECONDS)
                except (TimeoutError, ConnectionClosed):
                    pass
                finally:
                    receiver.cancel()
                    await asyncio.gather(receiver, return_exceptions=True)
        except InvalidStatus as error:
            raise LiveClientError(
                f"the server refused the WebSocket ({error.response.status_code})"
            ) from error
        except ConnectionClosed as error:
            raise LiveClientError(f"the server closed the session: {_closed(error)}") from error
        stats.finish()
        stats.set_dropped(run.not_sent + max(0, run.sent - stats.frames))
        summary = stats.summary()
        summary.update(size=self.outcome.ready.get("size", self.session.get("size")), cpu=cpu_summary())
        summary.update(sent=run.sent, end=self.outcome.end.get("reason"))
        if "recording_job" in self.outcome.end:
            summary["recording_job"] = self.outcome.end["recording_job"]
        if self.outcome.errors:
            summary["errors"] = list(self.outcome.errors)
        return summary


class _Run:
    """The counters one session's sender and receiver share (both on the event loop)."""

    def __init__(
        self, stats: LiveStats, on_frame: Callable[[VideoMessage, float], None] | None, outcome: Outcome
    ) -> None:
        self.stats = stats
        self.on_frame = on_frame
        self.outcome = outcome
        self.sent = 0
        self.not_sent = 0
        self.waiting: deque[int] = deque()  # seqs sent and not answered yet, oldest first
        self.answered = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self.waiting)

    def answer(self, seq: int) -> None:
        """The server animated frame ``seq``: it and every frame sent before it are settled."""
        while self.waiting and self.waiting[0] <= seq:
            self.waiting.popleft()
        self.answered.set()

    async def wait_ready(self, socket: Any) -> None:
        while True:
            message = await asyncio.wait_for(socket.recv(), READY_SECONDS)
            if isinstance(message, bytes):
                continue
            data = _json(message)
            if data.get("type") == "ready":
                self.outcome.ready = data
                return
            self._text(data)
            if data.get("type") == "end":
                raise LiveClientError(f"the server ended the session before it started: {self._why()}")

    async def send(self, socket: Any, frames: AsyncIterator[tuple[int, float, bytes]], limit: int) -> None:
        async for seq, due_ms, payload in frames:
            if self.outcome.end:
                return
            if self.in_flight >= limit:
                self.not_sent += 1  # the server has not answered enough: the frame is dropped
                continue
            await socket.send(pack_video(seq, due_ms, payload))
            self.sent += 1
            self.waiting.append(seq)

    async def drain(self, timeout: float) -> None:
        deadline = now_ms() + timeout * 1000
        while self.in_flight and not self.outcome.end and now_ms() < deadline:
            self.answered.clear()
            try:
                await asyncio.wait_for(self.answered.wait(), (deadline - now_ms()) / 1000)
            except TimeoutError:
                return

    async def receive(self, socket: Any) -> None:
        async for message in socket:
            if isinstance(message, bytes):
                received = now_ms()
                video = unpack_video(message, down=True)
                delay = received - video.captured_ms
                self.stats.record(delay, video.engine_ms)
                self.answer(video.seq)
                if self.on_frame is not None:
                    self.on_frame(video, delay)
                continue
            data = _json(message)
            self._text(data)
            if data.get("type") == "end":
                self.answered.set()
                return

    def _text(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "stats":
            self.outcome.server_stats = data
        elif kind == "error":
            self.outcome.errors.append(str(data.get("message", "")))
        elif kind == "end":
            self.outcome.end = data

    def _why(self) -> str:
        return "; ".join(self.outcome.errors) or str(self.outcome.end.get("reason", "unknown"))


async def _paced(
    frames: Iterable[Frame],
    fps: float | None,
    seconds: float | None,
    run: _Run,
    *,
    clock: Callable[[], float] = now_ms,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[tuple[int, float, bytes]]:
    """(seq, capture time, JPEG) for each frame. With ``fps``, frame ``i`` is due ``i / fps`` after the
    first arrived and carries that time; one whose successor is already due is dropped (and counted)
    rather than sent late, so the first frame is always sent. Without, frames come paced by their
    source (a camera) and carry their arrival. ``clock`` is in milliseconds, ``sleep`` in seconds.

    Frames are taken (and encoded) on a worker thread, so a source that blocks until its next frame,
    or the encoding, never holds up the answers arriving meanwhile.
    """
    it = iter(frames)

    def take() -> bytes | None:
        frame = next(it, None)
        if frame is None or isinstance(frame, bytes):
            return frame
        return _jpeg(frame)

    step = 1000.0 / fps if fps else 0.0
    start: float | None = None
    index = 0
    while (payload := await asyncio.to_thread(take)) is not None:
        if start is None:
            start = clock()
        due = start + index * step if fps else clock()
        index += 1
        if seconds is not None and due >= start + seconds * 1000:
            return
        wait = due - clock()
        if wait > 0:
            await sleep(wait / 1000)
        elif fps and -wait >= step:
            run.not_sent += 1
            continue
        yield index, due, payload


def _jpeg(image: np.ndarray) -> bytes:
    from animatica.live.codec import encode_frame

    return encode_frame(image, "jpeg", QUALITY)


def _json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail or response.text[:200] or response.reason_phrase)


def _closed(error: Any) -> str:
    received = getattr(error, "rcvd", None)
    if received is None:
        return "the connection dropped"
    return f"{received.reason or 'no reason given'} (code {received.code})"


def looped(frames: list[bytes]) -> Iterable[bytes]:
    """The frames over and over: a short clip standing in for a camera for as long as needed."""
    while True:
        yield from frames
