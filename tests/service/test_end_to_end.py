"""One job through the real pipeline and the default `landmarks` engine (no weights), over HTTP."""

import importlib.util
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

pytestmark = pytest.mark.slow


def _face_inputs(folder: Path) -> tuple[Path, Path]:
    from skimage import data

    face = data.astronaut()[0:300, 100:400]  # a real photographed face, shipped with scikit-image
    source = folder / "face.png"
    Image.fromarray(face).resize((256, 256)).save(source)
    driving = folder / "drive.mp4"
    with av.open(str(driving), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(8))
        stream.width = stream.height = 256
        stream.pix_fmt = "yuv420p"
        for shift in range(10):
            frame = Image.fromarray(face[shift : 280 + shift, 10 + shift : 290 + shift]).resize((256, 256))
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return source, driving


@pytest.mark.skipif(
    importlib.util.find_spec("animatica.pipeline") is None, reason="animatica.pipeline is not written yet"
)
def test_real_animation_over_http(settings: Any, api: Any, tmp_path: Path) -> None:
    from animatica.service.app import create_app

    source, driving = _face_inputs(tmp_path)
    app = create_app(settings.model_copy(update={"worker_enabled": True, "torch_threads": 1}))
    with TestClient(app) as client:
        tokens = api.signup_login(client, "alice")
        job_id = api.submit(client, tokens, source, driving, engine="landmarks").json()["id"]
        job = api.wait_for(client, tokens, job_id, timeout=300)
        assert job["status"] == "succeeded", job
        video = client.get(f"/api/v1/animations/{job_id}/result", headers=api.bearer(tokens))
        result = tmp_path / "result.mp4"
        result.write_bytes(video.content)
        with av.open(str(result)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 10 == job["frames"]
        assert api.credits(client, tokens) == 2
