"""Operations and the remaining routes: health, metrics, retention, schema, the seed's
synchronous endpoint and its ML-engine endpoint (fake executor: routing and limits only)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import update

from animatica.db.models import Base, Job
from animatica.jobs.retention import purge_expired
from animatica.storage import open_storage


def test_migrations_match_the_models(db: Any) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_health_and_metrics(make_client: Any, api: Any) -> None:
    client = make_client(worker=False)
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok", "storage": "ok"}
    api.signup_login(client, "alice")
    metrics = client.get("/metrics").text
    assert (
        'animatica_http_requests_total{method="POST",route="/api/v0/auth/signup",status="201"} 1.0' in metrics
    )
    assert "animatica_http_request_seconds_bucket" in metrics
    assert client.get("/docs").status_code == 200
    assert "/api/v1/animations" in client.get("/openapi.json").json()["paths"]


def test_retention_deletes_old_files_but_keeps_history(
    make_client: Any, api: Any, media: dict[str, Path], settings: Any, db: Any
) -> None:
    client = make_client(worker=True)
    tokens = api.signup_login(client, "alice")
    job_id = api.submit(client, tokens, media["image"], media["video"]).json()["id"]
    assert api.wait_for(client, tokens, job_id)["status"] == "succeeded"
    storage = open_storage(settings.storage_url)
    assert purge_expired(db, storage, settings) == 0
    with db.transaction() as session:
        old = datetime.now(UTC) - timedelta(days=30)
        session.execute(update(Job).where(Job.id == job_id).values(finished_at=old))
    assert purge_expired(db, storage, settings) == 3
    root = Path(settings.storage_url.removeprefix("file://"))
    assert [p for p in root.rglob("*") if p.is_file()] == []
    assert client.get(f"/api/v1/animations/{job_id}/result", headers=api.bearer(tokens)).status_code == 410
    assert (
        client.get(f"/api/v1/animations/{job_id}", headers=api.bearer(tokens)).json()["status"] == "succeeded"
    )


def test_seed_synchronous_endpoint(
    make_client: Any, api: Any, media: dict[str, Path], tmp_path: Path
) -> None:
    client = make_client(worker=True, sync_max_seconds=2.0)
    tokens = api.signup_login(client, "alice")

    def post(video: Path) -> Any:
        with media["image"].open("rb") as img, video.open("rb") as vid:
            return client.post(
                "/api/v0/animation/video",
                headers=api.bearer(tokens),
                files={"source_image": ("s.png", img), "driving_video": ("d.mp4", vid)},
            )

    response = post(media["video"])
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    assert response.content[4:8] == b"ftyp"
    too_long = post(api.write_mp4(tmp_path / "long.mp4", frames=24, fps=8))
    assert too_long.status_code == 422 and "2 s" in too_long.json()["detail"]
    assert api.credits(client, tokens) == 2


def test_ml_engine_endpoint_needs_its_key(make_client: Any, media: dict[str, Path]) -> None:
    def post(client: Any, headers: dict[str, str]) -> Any:
        with media["image"].open("rb") as img, media["video"].open("rb") as vid:
            return client.post(
                "/api/fomm/video", headers=headers, files={"source_image": img, "driving_video": vid}
            )

    assert post(make_client(worker=False), {"X-ML-Engine-Key": "anything"}).status_code == 404
    client = make_client(worker=False, ml_engine_key="engine-key-123")
    assert post(client, {}).status_code == 403
    assert post(client, {"X-ML-Engine-Key": "engine-key-124"}).status_code == 403
    response = post(client, {"X-ML-Engine-Key": "engine-key-123"})
    assert response.status_code == 200 and response.content[4:8] == b"ftyp"
