"""Fixtures shared by the whole suite."""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from animatica.db import Database
    from animatica.db.models import Job
    from animatica.settings import Settings

REPO = Path(__file__).resolve().parents[1]
FOMM_REFERENCE = REPO / "tests" / "fomm" / "reference"


@pytest.fixture(autouse=True)
def animatica_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ANIMATICA_HOME, so nothing touches the user's real data folder."""
    from animatica.settings import get_settings

    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("ANIMATICA_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def fomm_reference() -> Path:
    """The FOMM reference data, trimmed and kept in the repository so that a clone alone is tested.

    ``tests/fomm/reference/refresh.py`` writes it from the full reference folder.
    """
    if not (FOMM_REFERENCE / "vox256_parity.npz").is_file():
        pytest.fail(f"FOMM reference data not found in {FOMM_REFERENCE}")
    return FOMM_REFERENCE


@pytest.fixture(scope="session")
def named_checkpoint(fomm_reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vox-256 checkpoint whose weights derive from key names (the reference's parity weights)."""
    out = tmp_path_factory.mktemp("ckpt") / "named.pth.tar"
    argv = sys.argv
    try:
        sys.argv = ["make_named_checkpoint.py", str(out)]
        runpy.run_path(str(fomm_reference / "make_named_checkpoint.py"), run_name="__main__")
    finally:
        sys.argv = argv
    return out


_TINY_DENSE_MOTION = {"block_expansion": 8, "max_features": 64, "num_blocks": 3, "scale_factor": 0.5}
TINY_FOMM_CONFIG = {
    "dataset_params": {"frame_shape": [64, 64, 3]},
    "model_params": {
        "common_params": {"num_kp": 5, "num_channels": 3, "estimate_jacobian": True},
        "kp_detector_params": {
            "temperature": 0.1, "block_expansion": 8, "max_features": 64, "scale_factor": 0.5,
            "num_blocks": 3,
        },
        "generator_params": {
            "block_expansion": 8, "max_features": 64, "num_down_blocks": 2, "num_bottleneck_blocks": 1,
            "estimate_occlusion_map": True, "dense_motion_params": _TINY_DENSE_MOTION,
        },
        "discriminator_params": {
            "scales": [1], "block_expansion": 8, "max_features": 64, "num_blocks": 3, "sn": True,
        },
    },
}  # fmt: skip


@pytest.fixture(scope="session")
def tiny_fomm_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small FOMM at 64x64 with random weights and its config inside: fast real networks for tests."""
    import torch

    from animatica.fomm.checkpoint import save_checkpoint
    from animatica.fomm.config import config_from_dict, config_to_dict, generator_kwargs, kp_detector_kwargs
    from animatica.fomm.generator import OcclusionAwareGenerator
    from animatica.fomm.keypoint_detector import KPDetector

    cfg = config_from_dict(TINY_FOMM_CONFIG)
    torch.manual_seed(0)
    kp_detector = KPDetector(**kp_detector_kwargs(cfg))
    generator = OcclusionAwareGenerator(**generator_kwargs(cfg))
    with torch.no_grad():  # a non-trivial jacobian head, so that relative jacobians matter
        kp_detector.jacobian.weight.normal_(0, 0.01)
    path = tmp_path_factory.mktemp("tiny") / "tiny.pth.tar"
    save_checkpoint(
        path,
        {
            "kp_detector": kp_detector.state_dict(),
            "generator": generator.state_dict(),
            "config": config_to_dict(cfg),
        },
    )
    return path


@pytest.fixture(scope="session")
def named_lp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LivePortrait weights in the public folder layout, derived from the key names: the weights the
    reference numbers in ``tests/liveportrait/reference/parity.npz`` were computed with. About 500 MB,
    written once per session for every test that runs the liveportrait engine."""
    from tests.liveportrait.named_weights import write_named_checkpoint

    return write_named_checkpoint(tmp_path_factory.mktemp("liveportrait") / "liveportrait")


def write_test_video(
    path: Path, frames: int = 12, size: tuple[int, int] = (96, 80), fps: int = 25, audio: bool = True
) -> Path:
    """A short H.264 clip of a moving disc over a gradient, with a sine tone when ``audio``."""
    import av
    import numpy as np

    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        sound = container.add_stream("aac", rate=44100) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i in range(frames):
            cx, cy = w / 2 + 10 * np.sin(i / 3), h / 2 + 6 * np.cos(i / 4)
            disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < (min(h, w) / 5) ** 2)[..., None]
            img = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 90)], -1) * ~disc + disc * 230
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            samples = frames * 44100 // fps
            t = np.arange(samples) / 44100
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(tone[:, start : start + 1024]), format="fltp", layout="mono"
                )
                chunk.sample_rate = 44100
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path


@pytest.fixture()
def test_video(tmp_path: Path) -> Path:
    return write_test_video(tmp_path / "driving.mp4")


@pytest.fixture()
def test_image(tmp_path: Path) -> Path:
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:120, 0:100]
    img = np.stack([xx * 2, yy * 2, (xx + yy) % 256], -1).astype(np.uint8)
    path = tmp_path / "source.png"
    Image.fromarray(img).save(path)
    return path


# --- databases, settings and apps: shared by the db, storage, jobs and service tests -----------------
# Real databases (SQLite and, when it answers, the local PostgreSQL), real media files, and apps wired
# to them. PostgreSQL tests run in a database created for this test session and dropped afterwards;
# each test starts from empty tables. Imports are local so that suites which use none of this (the
# model tests) do not pay for loading the web stack.

PG_ADMIN_URL = os.environ.get("ANIMATICA_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def postgres_problem() -> str | None:
    """Why the local PostgreSQL cannot be used, or None when it answers."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} does not answer ({type(exc).__name__})"
    return None


@contextlib.contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """The URL of an empty PostgreSQL database of its own, dropped on leaving."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    from animatica.db import Database, upgrade_to_head

    reason = postgres_problem()
    if reason:
        pytest.skip(reason)
    with scratch_postgres("animatica_test") as url:
        db = Database(url)
        upgrade_to_head(db.engine)
        db.dispose()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    from sqlalchemy import text

    from animatica.db import Database
    from animatica.db.models import Base

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
    from animatica.settings import Settings

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
    from animatica.db import Database, upgrade_to_head

    database = Database(settings.database_url)
    upgrade_to_head(database.engine)
    yield database
    database.dispose()


def add_job(db: Database, user_id: int, job_id: str | None = None, **fields: Any) -> str:
    """Queue a job row through the state machine, its credit reserved, with no upload or request.

    Unless ``fields`` say otherwise it is a landmarks animation whose inputs would be stored under
    ``jobs/<id>/``; a job of another kind takes the source picture alone.
    """
    from animatica.jobs import state

    job_id = job_id or uuid.uuid4().hex
    values: dict[str, Any] = {
        "engine": "landmarks",
        "options": {},
        "priority": 0,
        "source_name": "face.png",
        "source_key": f"jobs/{job_id}/source.png",
    }
    if fields.get("kind", state.ANIMATION) == state.ANIMATION:
        values.update(driving_name="drive.mp4", driving_key=f"jobs/{job_id}/driving.mp4")
    values.update(fields)
    with db.transaction() as session:
        state.create(session, job_id=job_id, user_id=user_id, **values)
    return job_id


def load_job(db: Database, job_id: str) -> Job:
    """The job's row as it stands, detached so that it reads after its session closed."""
    from animatica.db.models import Job

    with db.read() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def write_png(path: Path, size: tuple[int, int] = (96, 96)) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def write_mp4(path: Path, frames: int = 8, size: int = 64, fps: int = 8) -> Path:
    import av
    import numpy as np

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
    from fastapi.testclient import TestClient

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
