"""A job whose driving video decodes past its plan's length fails, says why, and returns its credit.

The upload check measures a clip on its packets and refuses what is too long; this is the last
line behind it, for a clip that still decodes more frames than the job was allowed (a decoder
that makes several frames of one packet, a check that a future change weakens). The real
pipeline and the `landmarks` engine run here, through the real runner and database.
"""

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from animatica.db.models import Job
from animatica.jobs import state
from animatica.jobs.lifecycle import ThreadExecutor
from animatica.jobs.runner import JobRunner
from animatica.storage import open_storage

pytestmark = pytest.mark.slow


def _face_webm(folder: Path, seconds: float) -> tuple[Path, Path]:
    """The demo face and a WebM of the demo motion (WebM declares no frame count: only decoding counts)."""
    from animatica.demo import demo_driving_frames, write_demo_inputs

    source, _mp4 = write_demo_inputs(folder)
    driving = folder / "talking.webm"
    with av.open(str(driving), "w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=10)
        stream.width = stream.height = 128
        stream.pix_fmt = "yuv420p"
        for index, pixels in enumerate(demo_driving_frames(seconds=seconds, fps=10, size=128)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 10)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return source, driving


def test_decoding_past_the_jobs_frame_limit_fails_the_job_and_refunds(
    settings: Any, api: Any, db: Any, tmp_path: Path
) -> None:
    from animatica.service.app import create_app

    source, driving = _face_webm(tmp_path / "inputs", seconds=3.0)
    app_settings = settings.model_copy(update={"worker_enabled": False, "torch_threads": 1})
    with TestClient(create_app(app_settings)) as client:
        tokens = api.signup_login(client, "alice")
        response = api.submit(client, tokens, source, driving, engine="landmarks")
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        assert response.json()["options"]["max_frames"] == 15 * 10 + 1
        assert api.credits(client, tokens) == 2
        # As if the clip had slipped past the check: the job may decode 12 of its 30 frames.
        with db.transaction() as session:
            job = session.get(Job, job_id)
            session.execute(
                update(Job).where(Job.id == job_id).values(options={**job.options, "max_frames": 12})
            )
        storage = open_storage(app_settings.storage_url)
        runner = JobRunner(db, storage, app_settings, ThreadExecutor(app_settings), {})
        claimed = state.claim_next(db, runner.worker_id, {})
        assert claimed is not None and claimed.id == job_id
        assert runner.run(claimed) == state.FAILED
        job = client.get(f"/api/v1/animations/{job_id}", headers=api.bearer(tokens)).json()
        assert job["status"] == "failed" and job["result_url"] is None
        assert job["error"].startswith(
            "The driving video has more than 12 frames (about 1.2 s at its frame rate)"
        )
        assert "/" not in job["error"]  # no server paths
        assert api.credits(client, tokens) == 3
        root = Path(app_settings.storage_url.removeprefix("file://"))
        assert sorted(path.name for path in root.rglob("*") if path.is_file()) == [
            "driving.webm",
            "source.png",
        ]  # the inputs, kept for a retry; no result, whole or partial
