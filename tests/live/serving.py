"""For live tests: a real server (the app under uvicorn on a free local port, an account on it),
and the portrait and camera frames they send it."""

import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from animatica.settings import Settings

DEADLINE = 60.0  # only a bound on a broken server, never a measure of speed


@contextmanager
def serve(settings: Settings) -> Iterator[tuple[str, Any]]:
    """(base URL, the app) while the app runs under uvicorn, without job workers."""
    import uvicorn

    from animatica.service.app import create_app

    app = create_app(settings.model_copy(update={"worker_enabled": False, "upload_check_processes": 0}))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + DEADLINE
    while not runner.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        runner.should_exit = True
        thread.join(DEADLINE)


def access_token(base: str, username: str) -> str:
    """Sign ``username`` up on the server at ``base`` and return a Bearer access token."""
    import httpx

    account = {"username": username, "password": "correct horse"}
    assert httpx.post(f"{base}/api/v0/auth/signup", json=account).status_code == 201
    return str(httpx.post(f"{base}/api/v0/auth/login", json=account).json()["access_token"])


def write_portrait(path: Path) -> Path:
    """The astronaut photo (a clear frontal face) saved as PNG at ``path``."""
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(path)
    return path


def camera_frames(shifts: tuple[int, ...]) -> list[bytes]:
    """Camera JPEGs (256x256): the astronaut's face moved sideways by each of ``shifts`` pixels."""
    import numpy as np
    from PIL import Image
    from skimage import data

    picture = data.astronaut()[:320, 60:380]
    frames = []
    for shift in shifts:
        buffer = io.BytesIO()
        Image.fromarray(np.roll(picture, shift, axis=1)).resize((256, 256)).save(buffer, "JPEG", quality=90)
        frames.append(buffer.getvalue())
    return frames
