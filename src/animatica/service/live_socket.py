"""The live WebSocket: one session run from its first frame to its goodbye.

`run_session` authenticates the socket, takes the session opened by `animatica.service.live`
(once: a second socket for it finds nothing), and runs it as a `LiveRun` until the viewer stops,
goes away, the engine fails or the day's live minutes run out; then it frees the engine's state,
meters the last seconds, hands a recording to its job and says why the session ended.

Sessions run in the web process that holds the WebSocket, on a thread of their own, never
through the job queue: a live frame cannot wait behind batch jobs. The engine is loaded once per
process and shared; each session has its own state (`LiveAnimator`). The event loop never
decodes, animates or encodes: camera frames go into the loop's one-frame mailbox as received,
the engine thread decodes the newest, animates and encodes it, and one sender task passes the
newest animated frame (and any text message) on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from fastapi import WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from animatica.engines import load_engine
from animatica.engines.base import Engine
from animatica.errors import AnimaticaError
from animatica.live.codec import decode_frame, encode_frame
from animatica.live.recording import Recorder, RecordingError
from animatica.live.session import AnimatedFrame, LiveAnimator, LiveLoop, now_ms
from animatica.live.stats import LiveStats
from animatica.live.wire import AudioMessage, WireError, pack_video, unpack
from animatica.media.reader import read_image
from animatica.service.context import ServiceContext
from animatica.service.deps import CurrentUser, active_user
from animatica.service.errors import NotFound, Unauthorized
from animatica.service.live import (
    NO_SESSION,
    USED_UP,
    LiveHub,
    LiveTicket,
    allowance,
    connect,
    end_session,
    live_hub,
    meter,
    seen,
    utc_day,
)
from animatica.service.live_recording import submit_live_recording
from animatica.service.pages.sessions import SESSION_COOKIE, page_sessions
from animatica.service.plans import get_plan
from animatica.settings import Settings
from animatica.storage.base import Storage

log = logging.getLogger("animatica.service.live")

QUALITY = 80
MAX_CAMERA_SIDE = 1920  # camera frames larger than this are refused (1080p fits)
RECORDING_NAME = "live.mkv"

# WebSocket close codes (4000-4999 are the application's own)
CLOSE_NORMAL = 1000
CLOSE_ERROR = 1011
CLOSE_USED_UP = 4002
CLOSE_UNAUTHORIZED = 4401
CLOSE_FOREIGN_ORIGIN = 4403
CLOSE_NO_SESSION = 4404

UNKNOWN_MESSAGE = "Unknown message; send frames, neutral or stop."


# --- engines -------------------------------------------------------------------------------------------

_engines: dict[tuple[Any, ...], Engine] = {}
_engines_lock = threading.Lock()


def live_engine(settings: Settings, name: str) -> Engine:
    """The engine ``name`` with the operator's weights, loaded once per process and shared by every
    session (each keeps its own state)."""
    from animatica.jobs.engine_choice import weights_for

    weights = weights_for(settings, name)
    options = weights.load_options(settings) if weights is not None else {}
    key = (name, *sorted((k, str(v)) for k, v in options.items()))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = load_engine(name, **options)
            engine.preload()
            _engines[key] = engine
    return engine


# --- running a session --------------------------------------------------------------------------------


def read_portrait(storage: Storage, key: str) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="animatica-live-") as tmp:
        path = Path(tmp) / "source.png"
        storage.get_file(key, path)
        return read_image(path)  # stored by the upload checks: already a bounded, upright PNG


class _Outbox:
    """What the one sender task sends next: text messages in order, then the newest animated frame
    (an older frame not yet sent is dropped). One sender means one writer on the socket."""

    def __init__(self) -> None:
        self.message: bytes | None = None
        self.texts: deque[str] = deque()
        self.ready = asyncio.Event()
        self.dropped = 0

    def put(self, message: bytes) -> None:
        if self.message is not None:
            self.dropped += 1
        self.message = message
        self.ready.set()

    def put_text(self, message: dict[str, Any]) -> None:
        self.texts.append(json.dumps(message))
        self.ready.set()

    async def take(self) -> str | bytes:
        await self.ready.wait()
        if self.texts:
            text = self.texts.popleft()
        else:
            text, self.message = self.message, None
            assert text is not None
        if not self.texts and self.message is None:
            self.ready.clear()
        return text


@dataclass
class _Ending:
    reason: str
    code: int
    error: str | None = None


class LiveRun:
    """One connected session: the engine loop, the recorder, the meter and the WebSocket's tasks."""

    def __init__(
        self,
        ctx: ServiceContext,
        hub: LiveHub,
        websocket: WebSocket,
        ticket: LiveTicket,
        user: CurrentUser,
        now: float,
    ) -> None:
        self.ctx, self.hub, self.ws, self.ticket, self.user = ctx, hub, websocket, ticket, user
        self.plan = get_plan(user.plan_id)
        self.started = now
        self.metered_until = now
        self.left_at_meter = 0.0
        self.stats = LiveStats(ticket.engine)
        self.outbox = _Outbox()
        self.received_ms: dict[int, tuple[float, float]] = {}  # seq -> (client captured_ms, our receipt)
        self.ending: asyncio.Future[_Ending] | None = None
        self.loop: LiveLoop | None = None
        self.recorder: Recorder | None = None
        self.recording_dir: tempfile.TemporaryDirectory[str] | None = None
        self.event_loop = asyncio.get_running_loop()

    # --- set-up, on a worker thread --------------------------------------------------------------

    def start_engine(self) -> None:
        engine = live_engine(self.ctx.settings, self.ticket.engine)
        portrait = read_portrait(self.ctx.storage, self.ticket.source_key)
        animator = LiveAnimator(engine, portrait, self.ticket.size)
        animator.warm_up()  # the engine's first-use costs, before "ready" rather than on the first frame
        if self.ticket.record:
            self.recording_dir = tempfile.TemporaryDirectory(
                prefix="animatica-live-", ignore_cleanup_errors=True
            )
            self.recorder = Recorder(Path(self.recording_dir.name) / RECORDING_NAME, self.ticket.size)
        # Camera frames stay encoded until the engine takes one: decoding on its thread keeps the
        # event loop free, and a frame dropped for a newer one is never decoded at all.
        self.loop = LiveLoop(animator, self._on_frame, self._on_error, decode=_decode_camera).start()

    # --- the engine thread's callbacks ------------------------------------------------------------

    def _on_frame(self, frame: AnimatedFrame) -> None:
        captured_ms, received_ms = self.received_ms.pop(frame.seq, (frame.captured_ms, frame.captured_ms))
        for seq in [seq for seq in list(self.received_ms) if seq < frame.seq]:
            self.received_ms.pop(seq, None)  # frames the engine skipped
        payload = encode_frame(frame.image, self.ticket.format, QUALITY)  # type: ignore[arg-type]
        recorder = self.recorder  # the event loop may stop the recording meanwhile
        if recorder is not None:
            jpeg = payload if self.ticket.format == "jpeg" else encode_frame(frame.image, "jpeg", QUALITY)
            try:
                recorder.add_frame(jpeg, captured_ms)
            except RecordingError as error:
                self._stop_recording(error)
        message = pack_video(frame.seq, captured_ms, payload, engine_ms=frame.engine_ms)
        delay = frame.ready_ms - received_ms
        with contextlib.suppress(RuntimeError):  # the event loop is gone: the session is over anyway
            self.event_loop.call_soon_threadsafe(self._deliver, message, delay, frame.engine_ms)

    def _stop_recording(self, error: RecordingError) -> None:
        """A recording that cannot go on (a full disk) is dropped and the viewer told; the live
        session itself goes on. Called on the engine thread or the event loop."""
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        log.warning("live recording stopped", extra={"session": self.ticket.id, "reason": str(error)})
        recorder.abort()
        notice = {"type": "error", "message": f"{_sentence(str(error))} The live session goes on."}
        with contextlib.suppress(RuntimeError):  # the event loop is gone: the session is over anyway
            self.event_loop.call_soon_threadsafe(self.outbox.put_text, notice)

    def _on_error(self, error: AnimaticaError) -> None:
        message = str(error)
        message = message[:1].upper() + message[1:]
        with contextlib.suppress(RuntimeError):
            self.event_loop.call_soon_threadsafe(self._end, _Ending(message, CLOSE_ERROR, error=message))

    # --- on the event loop ---------------------------------------------------------------------------

    def _deliver(self, message: bytes, delay_ms: float, engine_ms: float) -> None:
        self.stats.record(delay_ms, engine_ms)
        self.outbox.put(message)

    def _end(self, ending: _Ending) -> None:
        if self.ending is not None and not self.ending.done():
            self.ending.set_result(ending)

    async def run(self) -> _Ending:
        self.ending = self.event_loop.create_future()
        tasks = [
            asyncio.create_task(self._receive()),
            asyncio.create_task(self._send()),
            asyncio.create_task(self._tick()),
        ]
        try:
            return await self.ending
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _receive(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                self._end(_Ending("disconnected", CLOSE_NORMAL))
                return
            data = message.get("bytes")
            if data is not None:
                try:
                    unpacked = unpack(data)
                except WireError as error:
                    self.outbox.put_text({"type": "error", "message": _sentence(str(error))})
                    continue
                if isinstance(unpacked, AudioMessage):
                    recorder = self.recorder
                    if recorder is not None:
                        try:
                            recorder.add_audio(unpacked.started_ms, unpacked.payload)
                        except RecordingError as error:
                            self._stop_recording(error)
                    continue
                self.received_ms[unpacked.seq] = (unpacked.captured_ms, now_ms())
                self.loop.submit(unpacked.payload, unpacked.seq, unpacked.captured_ms)
                continue
            kind = _text_type(message.get("text"))
            if kind == "neutral":
                self.loop.request_neutral()
            elif kind == "stop":
                self._end(_Ending("stopped", CLOSE_NORMAL))
                return
            elif kind != "auth":  # a repeated auth message is harmless
                self.outbox.put_text({"type": "error", "message": UNKNOWN_MESSAGE})

    async def _send(self) -> None:
        while True:
            message = await self.outbox.take()
            if isinstance(message, str):
                await self.ws.send_text(message)
            else:
                await self.ws.send_bytes(message)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.hub.tick_seconds)
            now = self.hub.clock()
            if now - self.metered_until >= self.hub.meter_seconds:
                await asyncio.to_thread(self.meter, now)
            left = self.seconds_left(now)
            recent = self.stats.recent(1.0)
            self.outbox.put_text(
                {
                    "type": "stats",
                    "fps": recent["fps"],
                    "dropped": self.dropped,
                    "frames": self.stats.frames,
                    "engine_ms": recent["engine_ms"],
                    "delay_ms": recent["delay_ms_p50"],
                    "seconds_left": round(left, 1),
                }
            )
            if left <= 0:
                self._end(_Ending(USED_UP, CLOSE_USED_UP))
                return

    @property
    def dropped(self) -> int:
        return (self.loop.dropped if self.loop is not None else 0) + self.outbox.dropped

    # --- metering --------------------------------------------------------------------------------------

    def seconds_left(self, now: float) -> float:
        return self.left_at_meter - max(0.0, now - self.metered_until)

    def meter(self, now: float) -> None:
        """Write the seconds since the last meter to the day they end in, and read what is left."""
        elapsed = max(0.0, now - self.metered_until)
        day = utc_day(now)
        meter(self.ctx.db, self.ticket.user_id, day, elapsed)
        seen(self.ctx.db, self.ticket.id, now)
        with self.ctx.db.read() as session:
            self.left_at_meter = allowance(session, self.ticket.user_id, self.plan, day)
        self.metered_until = now

    # --- the end ------------------------------------------------------------------------------------------

    def finish(self, ending: _Ending) -> str | None:
        """Stop the engine (its state freed), meter the last seconds, hand a recording to its job and
        close the session's row; returns the recording's job, if one was made. On a worker thread."""
        job_id = None
        try:
            if self.loop is not None:
                self.loop.close(raise_error=False)
            if self.recorder is not None:
                path = self.recorder.finish()
                if path is not None:
                    job_id = submit_live_recording(
                        self.ctx,
                        self.user,
                        self.ticket.source_key,
                        path,
                        engine=self.ticket.engine,
                        source_name=self.ticket.source_name,
                    )
        except Exception:
            log.exception("could not finish a live session cleanly", extra={"session": self.ticket.id})
        finally:
            if self.recorder is not None:
                self.recorder.abort()
            if self.recording_dir is not None:
                self.recording_dir.cleanup()
            now = self.hub.clock()
            self.meter(now)
            end_session(self.ctx.db, self.ticket.id, now, ending.reason, job_id)
            self.ctx.storage.delete(self.ticket.source_key)
        return job_id


def _decode_camera(payload: bytes) -> np.ndarray:
    return decode_frame(payload, MAX_CAMERA_SIDE)


def _text_type(text: str | None) -> str | None:
    try:
        data = json.loads(text or "")
    except ValueError:
        return None
    return data.get("type") if isinstance(data, dict) and isinstance(data.get("type"), str) else None


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


# --- the WebSocket ----------------------------------------------------------------------------------------


async def authenticate(ctx: ServiceContext, websocket: WebSocket, hub: LiveHub) -> CurrentUser | None:
    """The WebSocket's user, or None after closing it with the reason's code.

    A Bearer header, else the page's session cookie from one of our own pages (the Origin must be
    this host's: a cookie travels with requests other sites make, so without that check any page
    could open a session in the viewer's name), else a token in the first message.
    """
    header = websocket.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await websocket.close(CLOSE_UNAUTHORIZED, "Send 'Authorization: Bearer <access token>'.")
            return None
        return await _user_from_token(ctx, websocket, token.strip(), accepted=False)
    cookie = websocket.cookies.get(SESSION_COOKIE)
    if cookie:
        origin = websocket.headers.get("origin") or ""
        host = (websocket.headers.get("host") or "").lower()
        if not origin or urlsplit(origin).netloc.lower() != host:
            await websocket.close(CLOSE_FOREIGN_ORIGIN, "Live sessions open only from this site's pages.")
            return None
        claims = page_sessions(ctx).read(cookie)
        try:
            if claims is None:
                raise Unauthorized("Your session has ended; sign in again.")
            return await run_in_threadpool(active_user, ctx, claims)
        except Unauthorized as error:
            await websocket.close(CLOSE_UNAUTHORIZED, str(error))
            return None
    await websocket.accept()
    try:
        first = await asyncio.wait_for(websocket.receive(), hub.auth_seconds)
    except TimeoutError:
        await websocket.close(CLOSE_UNAUTHORIZED, "Not authenticated: send your token first.")
        return None
    if first["type"] == "websocket.disconnect":
        return None
    token = None
    with contextlib.suppress(ValueError):
        data = json.loads(first.get("text") or "")
        if isinstance(data, dict) and data.get("type") == "auth" and isinstance(data.get("token"), str):
            token = data["token"]
    if not token:
        await websocket.close(CLOSE_UNAUTHORIZED, 'Not authenticated: send {"type":"auth","token":…} first.')
        return None
    return await _user_from_token(ctx, websocket, token, accepted=True)


async def _user_from_token(
    ctx: ServiceContext, websocket: WebSocket, token: str, *, accepted: bool
) -> CurrentUser | None:
    try:
        claims = ctx.tokens.decode_access(token)
        return await run_in_threadpool(active_user, ctx, claims)
    except Unauthorized as error:
        await websocket.close(CLOSE_UNAUTHORIZED, str(error))
        return None


async def run_session(ctx: ServiceContext, websocket: WebSocket, session_id: str) -> None:
    """The whole life of one live WebSocket: authenticate, take the session, animate until it ends,
    then free everything and say why it ended."""
    hub = live_hub(ctx)
    user = await authenticate(ctx, websocket, hub)
    if user is None:
        return
    if websocket.client_state == WebSocketState.CONNECTING:
        await websocket.accept()
    try:
        ticket = await asyncio.to_thread(connect, ctx.db, session_id, user.id, hub.clock())
    except NotFound:
        await websocket.close(CLOSE_NO_SESSION, NO_SESSION)
        return
    run = LiveRun(ctx, hub, websocket, ticket, user, hub.clock())
    ending = _Ending("disconnected", CLOSE_NORMAL)
    hub.running[ticket.id] = run
    try:
        await asyncio.to_thread(run.meter, run.started)  # reads today's allowance
        if run.left_at_meter <= 0:
            ending = _Ending(USED_UP, CLOSE_USED_UP)
        else:
            try:
                await asyncio.to_thread(run.start_engine)
            except AnimaticaError as error:
                ending = _Ending(_sentence(str(error)), CLOSE_ERROR, error=_sentence(str(error)))
            else:
                ready = {"engine": ticket.engine, "size": ticket.size, "format": ticket.format}
                await websocket.send_text(json.dumps({"type": "ready", **ready}))
                ending = await run.run()
    except (WebSocketDisconnect, RuntimeError):
        ending = _Ending("disconnected", CLOSE_NORMAL)
    finally:
        hub.running.pop(ticket.id, None)
        job_id = await asyncio.shield(asyncio.to_thread(run.finish, ending))
    await _say_goodbye(websocket, ending, job_id)


async def _say_goodbye(websocket: WebSocket, ending: _Ending, job_id: str | None) -> None:
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        if ending.error is not None:
            await websocket.send_text(json.dumps({"type": "error", "message": ending.error}))
        message: dict[str, Any] = {"type": "end", "reason": ending.reason}
        if job_id is not None:
            message["recording_job"] = job_id
        await websocket.send_text(json.dumps(message))
        await websocket.close(ending.code)
