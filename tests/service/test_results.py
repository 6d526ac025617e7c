"""Downloading a job's result: the saved name and the media type follow the result the job's kind wrote."""

from pathlib import Path
from typing import Any

from tests.conftest import add_job

from animatica.jobs import state
from animatica.service.results import download


def test_the_download_name_and_type_follow_the_stored_result() -> None:
    assert download("abc", "jobs/abc/result.mp4") == ("animatica-abc.mp4", "video/mp4")
    assert download("abc", "jobs/abc/result.PNG") == ("animatica-abc.png", "image/png")
    assert download("abc", "jobs/abc/result.bin") == ("animatica-abc.bin", "application/octet-stream")


def test_a_picture_result_is_served_as_a_picture(make_client: Any, api: Any, tmp_path: Path) -> None:
    client = make_client(worker=False)
    tokens = api.signup_login(client, "pat")
    ctx = client.app.state.ctx
    user_id = int(client.get("/api/v1/me", headers=api.bearer(tokens)).json()["id"])
    job_id = add_job(ctx.db, user_id, kind="thumbnail")
    picture = api.write_png(tmp_path / "small.png", (8, 8))
    key = f"jobs/{job_id}/result.png"
    ctx.storage.put_file(key, picture)
    claimed = state.claim_next(ctx.db, "test-worker", {"free": 1})
    assert claimed is not None and claimed.id == job_id
    assert state.succeed(ctx.db, job_id, "test-worker", key, picture.stat().st_size, 1, 0.0)

    answer = client.get(f"/api/v1/animations/{job_id}/result", headers=api.bearer(tokens))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    assert f'filename="animatica-{job_id}.png"' in answer.headers["content-disposition"]
    assert answer.content == picture.read_bytes()
