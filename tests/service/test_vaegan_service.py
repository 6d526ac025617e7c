"""The vaegan engine in the service: listed with its availability, and a job runs on it over HTTP
(a tiny random-weight checkpoint stands in for the shipped model)."""

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.vaegan.conftest import tiny_config, write_random_checkpoint

pytestmark = pytest.mark.slow


def _settings(tmp_path: Path, checkpoint: str, **extra: Any) -> Any:
    from animatica.settings import Settings

    return Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'state' / 'animatica.db'}",
        storage_url=(tmp_path / "files").as_uri(),
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        job_poll_seconds=0.05,
        job_heartbeat_seconds=0.2,
        log_level="WARNING",
        public_base_url="http://testserver",
        vaegan_checkpoint=checkpoint,
        **extra,
    )


def _inputs(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    source = folder / "source.png"
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(source)
    driving = folder / "drive.mp4"
    with av.open(str(driving), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(8))
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for _ in range(3):
            image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return source, driving


def test_a_vaegan_job_runs_over_http(tmp_path: Path, api: Any) -> None:
    from animatica.service.app import create_app
    from animatica.service.pages.create import engine_choices

    checkpoint = write_random_checkpoint(tmp_path / "tiny.pth", tiny_config())
    off = next(c for c in engine_choices(_settings(tmp_path, "")) if c["id"] == "vaegan")
    assert off["available"] is False and "turned off" in str(off["hint"])
    missing = next(c for c in engine_choices(_settings(tmp_path, "nope")) if c["id"] == "vaegan")
    assert missing["available"] is False and "no VAE+GAN model weights" in str(missing["hint"])
    source, driving = _inputs(tmp_path)
    # The real pipeline on a thread of the server: the same job code without a child process's start-up.
    settings = _settings(
        tmp_path, str(checkpoint), worker_enabled=True, worker_mode="thread", torch_threads=1
    )
    with TestClient(create_app(settings)) as client:
        tokens = api.signup_login(client, "alice")
        engines = client.get("/api/v1/engines", headers=api.bearer(tokens)).json()["engines"]
        assert {e["id"]: e["available"] for e in engines}["vaegan"] is True
        submitted = api.submit(client, tokens, source, driving, engine="vaegan")
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["engine"] == "vaegan"
        job = api.wait_for(client, tokens, submitted.json()["id"], timeout=300)
        assert job["status"] == "succeeded", job
        video = client.get(f"/api/v1/animations/{job['id']}/result", headers=api.bearer(tokens))
    result = tmp_path / "result.mp4"
    result.write_bytes(video.content)
    with av.open(str(result)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 3 == job["frames"]
    assert frames[0].shape[:2] == (64, 64)  # a picture without a face is animated whole
