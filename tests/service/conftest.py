"""Fixtures for the service tests: real databases (SQLite and, when it answers, the local
PostgreSQL), real media files, and apps wired to them.

PostgreSQL tests run in a database created for this test session and dropped afterwards; each
test starts from empty tables.
"""

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import create_engine, text

from animatica.db import Database, upgrade_to_head
from animatica.db.models import Base
from animatica.settings import Settings

PG_ADMIN_URL = os.environ.get("ANIMATICA_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} does not answer ({type(exc).__name__})"
    return None


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    name = f"animatica_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    upgrade_to_head(db.engine)
    db.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'animatica.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    db = Database(url)
    with db.engine.begin() as connection:
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.dispose()
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        storage_url=(tmp_path / "files").as_uri(),
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        worker_enabled=False,
        job_poll_seconds=0.05,
        job_heartbeat_seconds=0.2,
        log_level="WARNING",
        stripe_webhook_secret="whsec_test_secret",
        public_base_url="http://testserver",
        payment_provider="local",  # an app built without a listen address never falls into it
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    upgrade_to_head(database.engine)
    yield database
    database.dispose()


# --- media ---------------------------------------------------------------------------------


def write_png(path: Path, size: tuple[int, int] = (96, 96)) -> Path:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def write_mp4(path: Path, frames: int = 8, size: int = 64, fps: int = 8) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width = size
        stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            pixels = np.full((size, size, 3), (index * 25) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "media"
    folder.mkdir()
    return {"image": write_png(folder / "face.png"), "video": write_mp4(folder / "drive.mp4")}


# --- fake executor ---------------------------------------------------------------------------


class FakeExecutor:
    """Stands in for the pipeline where a test is about the job machinery, not about animation.

    It reports progress like the pipeline, honours cancellation, and writes a real MP4 (the
    driving clip re-encoded), so results can be downloaded and decoded.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.error: BaseException | None = None
        self.notes: list[str] = []

    def __call__(
        self, execution: Any, on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]
    ) -> Any:
        from animatica.errors import AnimaticaError

        self.calls += 1
        self.started.set()
        for done in range(4):
            on_progress(_Progress("animate", done, 4))
            while not self.gate.wait(0.02):
                if should_cancel():
                    raise AnimaticaError("Canceled.")
            if should_cancel():
                raise AnimaticaError("Canceled.")
        if self.error is not None:
            raise self.error
        write_mp4(execution.output, frames=6)
        return _Result(6, 8.0, list(self.notes))


class _Progress:
    def __init__(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total, self.fps, self.eta_seconds = stage, done, total, 10.0, 1.0


class _Result:
    def __init__(self, frames: int, fps: float, notes: list[str]) -> None:
        self.frames, self.fps, self.notes = frames, fps, notes


@pytest.fixture
def executor() -> FakeExecutor:
    return FakeExecutor()


@pytest.fixture
def make_client(settings: Settings, executor: FakeExecutor) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def factory(worker: bool = True, **overrides: Any) -> TestClient:
        from animatica.service.app import create_app

        app_settings = settings.model_copy(update={"worker_enabled": worker, **overrides})
        client = TestClient(create_app(app_settings, executor=executor))
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


# --- API helpers -----------------------------------------------------------------------------


def signup_login(client: TestClient, username: str, password: str = "correct horse") -> dict[str, str]:
    assert (
        client.post("/api/v0/auth/signup", json={"username": username, "password": password}).status_code
        == 201
    )
    tokens = client.post("/api/v0/auth/login", json={"username": username, "password": password}).json()
    return tokens


def bearer(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def submit(client: TestClient, tokens: dict[str, str], image: Path, video: Path, **form: str) -> Any:
    with image.open("rb") as img, video.open("rb") as vid:
        return client.post(
            "/api/v1/animations",
            headers=bearer(tokens),
            files={
                "source_image": (image.name, img, "image/png"),
                "driving_video": (video.name, vid, "video/mp4"),
            },
            data=form,
        )


def wait_for(
    client: TestClient, tokens: dict[str, str], job_id: str, timeout: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/animations/{job_id}", headers=bearer(tokens)).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def credits(client: TestClient, tokens: dict[str, str]) -> int:
    response = client.get("/api/v0/subscriptions/current", headers=bearer(tokens))
    return int(response.json()["subscription"]["remaining_queries"])


@pytest.fixture
def api() -> Any:
    """The helpers above, for test modules (importlib mode cannot import conftest by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        signup_login=signup_login,
        bearer=bearer,
        submit=submit,
        wait_for=wait_for,
        credits=credits,
        write_png=write_png,
        write_mp4=write_mp4,
    )
