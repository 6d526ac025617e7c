"""The liveportrait engine in the service: listed when its weights are installed, a job runs on it
through the job core, and a segment starts from the prepared state of the whole job.

Name-derived weights stand in for the public ones; each 512x512 frame costs seconds on a CPU, so
the clips are two frames long. The segment is checked against the reference's float32 numbers, so
it asks for float32 on the CPU (as the engine tests do, whose loaded networks it then shares).
"""

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

pytestmark = pytest.mark.slow

PARITY = Path(__file__).resolve().parents[1] / "liveportrait" / "reference" / "parity.npz"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(PARITY) as data:
        return {key: data[key] for key in ("inputs/source", "inputs/driving", "t1/out_u8")}


def _settings(tmp_path: Path, weights: Path, **extra: Any) -> Any:
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
        liveportrait_checkpoint=str(weights),
        **extra,
    )


def _inputs(reference: dict, folder: Path, frames: int = 2) -> tuple[Path, Path]:
    """The reference's source as a PNG and its first driving frames as an MP4."""
    source = folder / "source.png"
    Image.fromarray(reference["inputs/source"][0].transpose(1, 2, 0)).save(source)
    driving = folder / "drive.mp4"
    with av.open(str(driving), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(8))
        stream.width = stream.height = 256
        stream.pix_fmt = "yuv420p"
        for frame in reference["inputs/driving"][:frames]:
            image = np.ascontiguousarray(frame.transpose(1, 2, 0))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return source, driving


def test_a_liveportrait_job_runs_over_http(
    reference: dict, named_lp_dir: Path, tmp_path: Path, api: Any
) -> None:
    from animatica.service.app import create_app
    from animatica.service.pages.create import engine_choices

    source, driving = _inputs(reference, tmp_path)
    settings = _settings(tmp_path, named_lp_dir, worker_enabled=True, torch_threads=2)
    choice = next(c for c in engine_choices(settings) if c["id"] == "liveportrait")
    assert choice["available"] is True and choice["label"] == "LivePortrait"
    missing = next(
        c for c in engine_choices(_settings(tmp_path, tmp_path / "none")) if c["id"] == "liveportrait"
    )
    assert missing["available"] is False and "no LivePortrait model weights" in str(missing["hint"])
    with TestClient(create_app(settings)) as client:
        tokens = api.signup_login(client, "alice")
        engines = client.get("/api/v1/engines", headers=api.bearer(tokens)).json()["engines"]
        assert {e["id"]: e["available"] for e in engines}["liveportrait"] is True
        submitted = api.submit(  # the fixture's pictures are already face crops
            client, tokens, source, driving, engine="liveportrait", crop_face="false"
        )
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["engine"] == "liveportrait"
        job = api.wait_for(client, tokens, submitted.json()["id"], timeout=1200)
        assert job["status"] == "succeeded", job
        frames = _result_frames(client, api, tokens, job["id"])
        # The engine's own options: a multiplier of 0 carries none of the motion, whatever else.
        still = api.submit(
            client, tokens, source, driving, engine="liveportrait", crop_face="false",
            region="pose", stitching="false", driving_multiplier="0",
        )  # fmt: skip
        assert still.status_code == 202, still.text
        still_job = api.wait_for(client, tokens, still.json()["id"], timeout=1200)
        assert still_job["status"] == "succeeded", still_job
        options = still_job["options"]
        assert (options["region"], options["stitching"], options["driving_multiplier"]) == ("pose", False, 0)
        still_frames = _result_frames(client, api, tokens, still_job["id"])
    assert len(frames) == 2 == job["frames"]
    assert frames[0].shape == (512, 512, 3)
    # the second frame moves against the first (the initial frame, which shows the source's pose)
    assert np.abs(frames[1].astype(float) - frames[0]).mean() > 2
    assert len(still_frames) == 2
    assert np.abs(still_frames[1].astype(float) - still_frames[0]).mean() < 0.5, "no motion at all"
    assert np.abs(still_frames[1].astype(float) - frames[1]).mean() > 2


def _result_frames(client: TestClient, api: Any, tokens: dict[str, str], job_id: str) -> list[np.ndarray]:
    video = client.get(f"/api/v1/animations/{job_id}/result", headers=api.bearer(tokens))
    with av.open(io.BytesIO(video.content)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_a_segment_starts_from_the_prepared_state(
    reference: dict, named_lp_dir: Path, tmp_path: Path
) -> None:
    from animatica.errors import AnimaticaError
    from animatica.jobs.animation import execution, request_fields
    from animatica.pipeline import AnimationRequest, animate_frames, prepare

    source = tmp_path / "source.png"
    Image.fromarray(reference["inputs/source"][0].transpose(1, 2, 0)).save(source)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(reference["inputs/driving"][:2]):  # lossless, so the reference's frames
        Image.fromarray(frame.transpose(1, 2, 0)).save(frames / f"{i:05d}.png")
    settings = _settings(tmp_path, named_lp_dir, torch_threads=2, device="cpu", precision="fp32")
    job = execution(source, frames, tmp_path / "out" / "result.mp4", "liveportrait", {"crop_face": False})
    fields = request_fields(settings, job, output=tmp_path / "unused/")
    assert fields["engine"] == "liveportrait" and fields["checkpoint"] == str(named_lp_dir.resolve())
    blob = prepare(AnimationRequest(**fields)).to_bytes()
    (frame,) = list(animate_frames(AnimationRequest(**{**fields, "start": 1, "stop": 2}), prepared=blob))
    diff = np.abs(frame.astype(np.int16) - reference["t1/out_u8"][0].transpose(1, 2, 0))
    assert diff.mean() <= 0.5 and diff.max() <= 3
    other = AnimationRequest(**{**fields, "relative": False, "start": 1, "stop": 2})
    with pytest.raises(AnimaticaError, match="other inputs or options"):
        list(animate_frames(other, prepared=blob))
