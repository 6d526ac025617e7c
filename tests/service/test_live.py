"""Live sessions over the API: opening one (limits, allowance, portraits of one's own only), the
WebSocket's authentication, frames in and animated frames out on the landmarks engine with a real
face, neutral and stop, a dropped connection freeing the session, and metering on an injected
clock (no test waits for real time to pass: the clock moves when the test moves it)."""

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect
from tests.live.serving import camera_frames, write_portrait

from animatica.db.models import LiveSession, LiveUsage
from animatica.live.wire import pack_audio, pack_video, unpack_video
from animatica.service import live, live_socket
from animatica.service.pages.sessions import SESSION_COOKIE, page_sessions
from animatica.settings import Settings
from animatica.storage.base import StorageError

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
DEADLINE = 60.0  # only a bound on a broken server, never a measure of speed


class FakeClock:
    """Seconds since the epoch that move only when the test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def face(tmp_path: Path) -> Path:
    return write_portrait(tmp_path / "astronaut.png")


@pytest.fixture
def camera() -> list[bytes]:
    """Camera frames: the astronaut's face, moved a little from frame to frame, as JPEG."""
    return camera_frames((0, 6, 12))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(settings: Settings, clock: FakeClock) -> Iterator[TestClient]:
    from animatica.service.app import create_app

    app = create_app(settings.model_copy(update={"worker_enabled": False, "upload_check_processes": 0}))
    app.state.ctx.extra["live_hub"] = live.LiveHub(clock=clock, tick_seconds=0.02, auth_seconds=0.2)
    with TestClient(app) as test_client:
        yield test_client


def open_session(client: TestClient, tokens: dict[str, str], api: Any, face: Path | None, **form: Any) -> Any:
    files = {"source": (face.name, face.read_bytes(), "image/png")} if face is not None else None
    return client.post("/api/v1/live/sessions", headers=api.bearer(tokens), files=files, data=form)


def connect(client: TestClient, session_id: str, headers: dict[str, str]) -> Any:
    return client.websocket_connect(f"/api/v1/live?session={session_id}", headers=headers)


def receive_json(ws: Any, wanted: str, deadline: float | None = None) -> dict[str, Any]:
    """The next text message of type ``wanted``, skipping stats (and frames) before it; with a
    ``deadline`` (``time.monotonic``), only until then (stats keep arriving: a broken server fails
    rather than hangs)."""
    while deadline is None or time.monotonic() < deadline:
        message = ws.receive()
        if message["type"] == "websocket.close":
            raise AssertionError(f"closed ({message.get('code')}) before {wanted!r}")
        text = message.get("text")
        if text is None:
            continue
        data = json.loads(text)
        if data["type"] == wanted:
            return data
    raise AssertionError(f"no {wanted!r} message")


def receive_frame(ws: Any) -> Any:
    while True:
        message = ws.receive()
        if message["type"] == "websocket.close":
            raise AssertionError(f"closed ({message.get('code')}) before a frame")
        if message.get("bytes") is not None:
            return unpack_video(message["bytes"], down=True)


def row(client: TestClient, session_id: str) -> LiveSession:
    with client.app.state.ctx.db.read() as session:
        found = session.scalar(select(LiveSession).where(LiveSession.id == session_id))
        assert found is not None
        session.expunge(found)
        return found


def wait_until_ended(client: TestClient, session_id: str) -> LiveSession:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = row(client, session_id)
        if found.ended_at is not None:
            return found
        time.sleep(0.02)
    raise AssertionError("the live session never ended")


def usage(client: TestClient, user_id: int) -> float:
    with client.app.state.ctx.db.read() as session:
        return float(session.scalar(select(LiveUsage.seconds).where(LiveUsage.user_id == user_id)) or 0.0)


def user_id(client: TestClient, tokens: dict[str, str]) -> int:
    return client.app.state.ctx.tokens.decode_access(tokens["access_token"]).user_id


def test_frames_in_animated_frames_out_with_neutral_and_stop(
    client: TestClient, api: Any, face: Path, camera: list[bytes]
) -> None:
    tokens = api.signup_login(client, "alice")
    opened = open_session(client, tokens, api, face, size="192")
    assert opened.status_code == 201, opened.text
    body = opened.json()
    assert body["engine"] == "landmarks" and body["size"] == 192 and body["format"] == "jpeg"
    assert body["ws"] == f"/api/v1/live?session={body['id']}"
    assert body["seconds_left"] == 180.0  # the free plan's 3 minutes

    with connect(client, body["id"], api.bearer(tokens)) as ws:
        assert receive_json(ws, "ready") == {
            "type": "ready",
            "engine": "landmarks",
            "size": 192,
            "format": "jpeg",
        }
        ws.send_bytes(pack_video(7, 1234.5, camera[0]))
        first = receive_frame(ws)
        assert (first.seq, first.captured_ms) == (7, 1234.5)
        assert first.engine_ms is not None and first.engine_ms >= 0
        still = np.asarray(Image.open(io.BytesIO(first.payload)))
        assert still.shape == (192, 192, 3)

        ws.send_bytes(pack_video(8, 1270.0, camera[2]))
        moved = receive_frame(ws)
        assert (moved.seq, moved.captured_ms) == (8, 1270.0)
        moved_image = np.asarray(Image.open(io.BytesIO(moved.payload))).astype(np.int16)
        assert np.abs(moved_image - still).mean() > 0.5  # the camera moved, so did the portrait

        ws.send_text(json.dumps({"type": "neutral"}))  # the next frame is the new rest pose
        ws.send_bytes(pack_video(9, 1300.0, camera[2]))
        rest = receive_frame(ws)
        assert rest.seq == 9
        rest_image = np.asarray(Image.open(io.BytesIO(rest.payload))).astype(np.int16)
        # Measured from itself, the frame moves the portrait no more than the first frame did.
        assert np.abs(rest_image - still).mean() < np.abs(moved_image - still).mean()

        stats = receive_json(ws, "stats")
        assert stats["frames"] == 3 and stats["seconds_left"] <= 180

        ws.send_text(json.dumps({"type": "stop"}))
        assert receive_json(ws, "end")["reason"] == "stopped"
        closing = ws.receive()
        assert closing == {"type": "websocket.close", "code": 1000, "reason": ""}
    ended = wait_until_ended(client, body["id"])
    assert ended.end_reason == "stopped"
    # The portrait of a finished session is not kept.
    with pytest.raises(StorageError):
        client.app.state.ctx.storage.size(ended.source_key)


def test_a_recorded_session_becomes_a_free_job_in_the_history(
    client: TestClient, api: Any, face: Path, camera: list[bytes]
) -> None:
    tokens = api.signup_login(client, "alice")
    session_id = open_session(client, tokens, api, face, record="true").json()["id"]
    with connect(client, session_id, api.bearer(tokens)) as ws:
        receive_json(ws, "ready")
        for seq, frame in enumerate(camera, 1):
            ws.send_bytes(pack_video(seq, 1000.0 + 40 * seq, frame))
            receive_frame(ws)
        ws.send_text(json.dumps({"type": "stop"}))
        job_id = receive_json(ws, "end")["recording_job"]
    job = client.get(f"/api/v1/animations/{job_id}", headers=api.bearer(tokens)).json()
    assert job["kind"] == "live_recording" and job["source_name"] == face.name
    assert api.credits(client, tokens) == 3  # live minutes were metered; the job costs no credit
    assert row(client, session_id).recording_job == job_id


def test_a_recording_that_cannot_be_written_stops_but_the_session_goes_on(
    client: TestClient, api: Any, face: Path, camera: list[bytes]
) -> None:
    import shutil

    tokens = api.signup_login(client, "alice")
    session_id = open_session(client, tokens, api, face, record="true").json()["id"]
    with connect(client, session_id, api.bearer(tokens)) as ws:
        receive_json(ws, "ready")
        run = live.live_hub(client.app.state.ctx).running[session_id]
        assert run.recording_dir is not None
        shutil.rmtree(run.recording_dir.name)  # the disk lets the recording down
        ws.send_bytes(pack_audio(1000.0, b"\x1aE\xdf\xa3 a microphone chunk"))
        error = receive_json(ws, "error", deadline=time.monotonic() + DEADLINE)
        assert error["message"].startswith("The sound could not be recorded")
        assert error["message"].endswith("The live session goes on.")
        ws.send_bytes(pack_video(1, 1040.0, camera[0]))
        assert receive_frame(ws).seq == 1  # still animating
        ws.send_text(json.dumps({"type": "stop"}))
        end = receive_json(ws, "end")
    assert end["reason"] == "stopped" and "recording_job" not in end
    assert wait_until_ended(client, session_id).recording_job is None


def test_a_session_needs_credentials(client: TestClient, api: Any, face: Path) -> None:
    tokens = api.signup_login(client, "alice")
    session_id = open_session(client, tokens, api, face).json()["id"]

    # No header, no cookie, no token message: refused.
    with connect(client, session_id, {}) as ws, pytest.raises(WebSocketDisconnect) as silent:
        ws.receive_text()
    assert silent.value.code == live_socket.CLOSE_UNAUTHORIZED
    with connect(client, session_id, {}) as ws:
        ws.send_text(json.dumps({"type": "neutral"}))
        with pytest.raises(WebSocketDisconnect) as wrong_first:
            ws.receive_text()
    assert wrong_first.value.code == live_socket.CLOSE_UNAUTHORIZED
    # A forged token, in the header or in the first message.
    with (
        pytest.raises(WebSocketDisconnect) as forged,
        connect(client, session_id, {"Authorization": "Bearer x.y.z"}),
    ):
        pass
    assert forged.value.code == live_socket.CLOSE_UNAUTHORIZED
    with connect(client, session_id, {}) as ws:
        ws.send_text(json.dumps({"type": "auth", "token": "x.y.z"}))
        with pytest.raises(WebSocketDisconnect) as forged_message:
            ws.receive_text()
    assert forged_message.value.code == live_socket.CLOSE_UNAUTHORIZED
    # None of these took the session: the owner's token in the first message still can.
    with connect(client, session_id, {}) as ws:
        ws.send_text(json.dumps({"type": "auth", "token": tokens["access_token"]}))
        assert receive_json(ws, "ready")["engine"] == "landmarks"


def test_the_page_cookie_works_only_from_our_own_pages(client: TestClient, api: Any, face: Path) -> None:
    tokens = api.signup_login(client, "alice")
    ctx = client.app.state.ctx
    cookie = page_sessions(ctx).issue(ctx.tokens.decode_access(tokens["access_token"]))
    session_id = open_session(client, tokens, api, face).json()["id"]
    client.cookies.set(SESSION_COOKIE, cookie)
    try:
        for origin in (None, "http://evil.example", "null"):
            headers = {"Origin": origin} if origin else {}
            with pytest.raises(WebSocketDisconnect) as refused, connect(client, session_id, headers):
                pass
            assert refused.value.code == live_socket.CLOSE_FOREIGN_ORIGIN, origin
        with connect(client, session_id, {"Origin": "http://testserver"}) as ws:
            assert receive_json(ws, "ready")["engine"] == "landmarks"
    finally:
        client.cookies.clear()


def test_another_users_session_or_picture_is_refused_like_a_missing_one(
    client: TestClient, api: Any, face: Path
) -> None:
    alice = api.signup_login(client, "alice")
    bob = api.signup_login(client, "bob")
    alices = open_session(client, alice, api, face).json()["id"]

    for session_id in (alices, "0" * 32):
        refusal = pytest.raises(WebSocketDisconnect)
        with connect(client, session_id, api.bearer(bob)) as ws, refusal as refused:
            ws.receive_text()
        assert (refused.value.code, refused.value.reason) == (live_socket.CLOSE_NO_SESSION, live.NO_SESSION)

    from tests.conftest import add_job

    job = add_job(client.app.state.ctx.db, user_id(client, alice))
    missing = open_session(client, bob, api, None, source_job="f" * 32)
    foreign = open_session(client, bob, api, None, source_job=job)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    # Alice's session was not disturbed by Bob's attempts.
    with connect(client, alices, api.bearer(alice)) as ws:
        assert receive_json(ws, "ready")["engine"] == "landmarks"


def test_one_session_at_a_time_and_a_dropped_connection_frees_it(
    client: TestClient, api: Any, face: Path, camera: list[bytes]
) -> None:
    tokens = api.signup_login(client, "alice")
    first = open_session(client, tokens, api, face).json()["id"]
    second = open_session(client, tokens, api, face)
    assert second.status_code == 409
    assert second.json()["detail"].startswith("You already have a live session open")

    hub = live.live_hub(client.app.state.ctx)
    with connect(client, first, api.bearer(tokens)) as ws:
        receive_json(ws, "ready")
        ws.send_bytes(pack_video(1, 10.0, camera[0]))
        receive_frame(ws)
        run = hub.running[first]
        assert open_session(client, tokens, api, face).status_code == 409
    # The client went away without a word: the server ends the session and frees the engine.
    ended = wait_until_ended(client, first)
    assert ended.end_reason == "disconnected"
    assert first not in hub.running
    assert run.loop is not None and not run.loop.running
    assert run.loop.animator._state is None  # the engine's per-session state was let go
    assert open_session(client, tokens, api, face).status_code == 201


def test_a_session_never_connected_expires(
    client: TestClient, api: Any, face: Path, clock: FakeClock
) -> None:
    tokens = api.signup_login(client, "alice")
    waiting = open_session(client, tokens, api, face).json()["id"]
    clock.advance(live.CONNECT_SECONDS + 1)
    assert open_session(client, tokens, api, face).status_code == 201
    assert row(client, waiting).end_reason == "expired"
    with connect(client, waiting, api.bearer(tokens)) as ws, pytest.raises(WebSocketDisconnect) as refused:
        ws.receive_text()
    assert refused.value.code == live_socket.CLOSE_NO_SESSION


def test_live_seconds_are_metered_on_the_sessions_clock(
    client: TestClient, api: Any, face: Path, clock: FakeClock
) -> None:
    tokens = api.signup_login(client, "alice")
    uid = user_id(client, tokens)
    session_id = open_session(client, tokens, api, face).json()["id"]
    with connect(client, session_id, api.bearer(tokens)) as ws:
        receive_json(ws, "ready")
        clock.advance(12.5)  # past the metering interval: the next tick writes it
        deadline = time.monotonic() + DEADLINE
        while usage(client, uid) == 0 and time.monotonic() < deadline:
            receive_json(ws, "stats")
        assert usage(client, uid) == 12.5
        assert receive_json(ws, "stats")["seconds_left"] == 180 - 12.5
        clock.advance(4.0)
        ws.send_text(json.dumps({"type": "stop"}))
        receive_json(ws, "end")
    wait_until_ended(client, session_id)
    assert usage(client, uid) == 16.5  # the rest is metered at the end

    opened = open_session(client, tokens, api, face).json()
    assert opened["seconds_left"] == 180 - 16.5


def test_used_up_minutes_refuse_a_session_and_end_a_running_one(
    client: TestClient, api: Any, face: Path, clock: FakeClock
) -> None:
    tokens = api.signup_login(client, "alice")
    uid = user_id(client, tokens)
    session_id = open_session(client, tokens, api, face).json()["id"]
    with connect(client, session_id, api.bearer(tokens)) as ws:
        receive_json(ws, "ready")
        clock.advance(200.0)  # more than the free plan's 3 minutes
        end = receive_json(ws, "end")
        assert end["reason"] == live.USED_UP
        closing = ws.receive()
        assert closing["type"] == "websocket.close" and closing["code"] == live_socket.CLOSE_USED_UP
    wait_until_ended(client, session_id)
    assert usage(client, uid) == 200.0

    refused = open_session(client, tokens, api, face)
    assert refused.status_code == 429
    assert refused.json()["detail"] == live.USED_UP
    assert 0 < int(refused.headers["Retry-After"]) <= 24 * 3600

    clock.advance(live.seconds_to_midnight(clock()) + 1)  # a new UTC day: the minutes are back
    assert open_session(client, tokens, api, face).status_code == 201


def test_bad_choices_are_refused_clearly(client: TestClient, api: Any, face: Path) -> None:
    tokens = api.signup_login(client, "alice")
    for form, words in (
        ({"size": "64"}, "between 128 and 512"),
        ({"format": "gif"}, "jpeg or webp"),
        ({"engine": "magic"}, "Unknown engine"),
        ({"engine": "faceswap"}, "Unknown engine"),  # swaps faces in videos; not a live portrait
    ):
        response = open_session(client, tokens, api, face, **form)
        assert response.status_code == 422 and words in response.json()["detail"], response.text
    nothing = open_session(client, tokens, api, None)
    assert nothing.status_code == 422 and "Choose a portrait" in nothing.json()["detail"]
    not_a_picture = client.post(
        "/api/v1/live/sessions",
        headers=api.bearer(tokens),
        files={"source": ("face.png", b"<svg></svg>", "image/png")},
    )
    assert not_a_picture.status_code in (415, 422)
    assert open_session(client, tokens, api, face).status_code == 201  # refusals held no session


def test_the_page_opens_sessions_with_its_cookie_and_csrf_token(
    client: TestClient, api: Any, face: Path
) -> None:
    tokens = api.signup_login(client, "alice")
    ctx = client.app.state.ctx
    client.cookies.set(
        SESSION_COOKIE, page_sessions(ctx).issue(ctx.tokens.decode_access(tokens["access_token"]))
    )
    client.cookies.set("animatica_csrf", "c" * 32)
    files = {"source": (face.name, face.read_bytes(), "image/png")}
    try:
        forged = client.post("/live/sessions", files=files, data={"csrf_token": "d" * 32})
        assert forged.status_code == 403
        opened = client.post("/live/sessions", files=files, data={"csrf_token": "c" * 32})
        assert opened.status_code == 201, opened.text
        assert opened.json()["ws"].startswith("/api/v1/live?session=")
    finally:
        client.cookies.clear()
    assert client.post("/live/sessions", files=files, data={"csrf_token": "c" * 32}).status_code in (401, 403)


@pytest.mark.slow
def test_over_a_real_server_with_a_websocket_client(
    settings: Settings, api: Any, face: Path, camera: list[bytes], tmp_path: Path
) -> None:
    """uvicorn and the ``websockets`` client, as a non-browser client talks to a deployed server."""
    import socket

    import httpx
    import uvicorn
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect as ws_connect

    from animatica.service.app import create_app

    app = create_app(settings.model_copy(update={"worker_enabled": False, "upload_check_processes": 0}))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base) as http:
            password = {"username": "alice", "password": "correct horse"}
            assert http.post("/api/v0/auth/signup", json=password).status_code == 201
            tokens = http.post("/api/v0/auth/login", json=password).json()
            opened = http.post(
                "/api/v1/live/sessions",
                headers=api.bearer(tokens),
                files={"source": (face.name, face.read_bytes(), "image/png")},
                data={"format": "webp"},
            ).json()
        url = f"ws://127.0.0.1:{port}{opened['ws']}"
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(url, additional_headers={"Authorization": "Bearer forged"}, open_timeout=DEADLINE)
        assert refused.value.response.status_code == 403
        with ws_connect(url, additional_headers=api.bearer(tokens), open_timeout=DEADLINE) as ws:
            assert json.loads(ws.recv(DEADLINE))["type"] == "ready"
            ws.send(pack_video(3, 99.25, camera[1]))
            while isinstance(message := ws.recv(DEADLINE), str):
                pass
            frame = unpack_video(message, down=True)
            assert (frame.seq, frame.captured_ms) == (3, 99.25)
            assert frame.payload[:4] == b"RIFF" and frame.payload[8:12] == b"WEBP"
            ws.send(json.dumps({"type": "stop"}))
            while (end := json.loads(ws.recv(DEADLINE)))["type"] != "end":
                pass
            assert end["reason"] == "stopped"
    finally:
        server.should_exit = True
        thread.join(DEADLINE)
