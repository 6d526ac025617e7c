"""Operations and the remaining routes: health, metrics, retention, schema, the v0 synchronous
endpoint and the ML-engine endpoint (fake executor: routing and limits only)."""

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
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


@contextmanager
def _records(name: str) -> Iterator[list[logging.LogRecord]]:
    """What a logger emits: the service's loggers do not propagate to pytest's handler."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_health_says_only_ok_or_unavailable_and_logs_why(
    make_client: Any, settings: Any, tmp_path: Path
) -> None:
    client = make_client(worker=False)
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    assert "/api/v1/animations" in client.get("/openapi.json").json()["paths"]

    root = Path(settings.storage_url.removeprefix("file://"))
    shutil.rmtree(root)
    root.write_text("a file where the storage folder should be")
    with _records("animatica.service") as records:
        broken = client.get("/healthz")
    assert broken.status_code == 503 and broken.json() == {"status": "unavailable"}
    assert str(tmp_path) not in broken.text
    failures = [r for r in records if r.getMessage() == "health check failed: storage"]
    assert failures and failures[0].exc_info is not None and str(root) in str(failures[0].exc_info[1])


def test_metrics_need_the_configured_token(make_client: Any, api: Any) -> None:
    closed = make_client(worker=False)
    assert closed.get("/metrics").status_code == 404
    assert closed.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 404

    client = make_client(worker=False, metrics_token="scrape-token-1234")
    api.signup_login(client, "alice")
    assert client.get("/metrics").status_code == 401
    for wrong in ("Bearer scrape-token-1235", "Basic scrape-token-1234", "scrape-token-1234"):
        refused = client.get("/metrics", headers={"Authorization": wrong})
        assert refused.status_code == 401 and "animatica_http" not in refused.text
    metrics = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-1234"})
    assert metrics.status_code == 200
    assert (
        'animatica_http_requests_total{method="POST",route="/api/v0/auth/signup",status="201"} 1.0'
        in metrics.text
    )
    assert "animatica_http_request_seconds_bucket" in metrics.text


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


# --- behind a proxy: forwarded scheme, Secure cookies, HSTS ----------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _uvicorn(settings: Any) -> Iterator[str]:
    """The app under uvicorn with the options `animatica serve` gives it, on a free port."""
    import uvicorn

    from animatica.service.app import create_app, server_options

    port = _free_port()
    app = create_app(settings, bind_host="127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", **server_options("127.0.0.1", port, settings)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def _csrf_cookie(response: httpx.Response) -> str:
    return next(v for v in response.headers.get_list("set-cookie") if v.startswith("animatica_csrf="))


def test_a_trusted_proxy_makes_cookies_secure_and_sends_hsts(settings: Any) -> None:
    with _uvicorn(settings.model_copy(update={"forwarded_allow_ips": "127.0.0.1"})) as url:
        proxied = httpx.get(f"{url}/signin", headers={"X-Forwarded-Proto": "https"})
        assert proxied.status_code == 200
        assert proxied.headers["strict-transport-security"] == "max-age=31536000"
        assert "secure" in _csrf_cookie(proxied).lower()
        direct = httpx.get(f"{url}/signin")
        assert "strict-transport-security" not in direct.headers
        assert "secure" not in _csrf_cookie(direct).lower()


def test_forwarded_headers_from_anyone_else_are_ignored(settings: Any) -> None:
    with _uvicorn(settings.model_copy(update={"forwarded_allow_ips": "10.20.30.40"})) as url:
        spoofed = httpx.get(f"{url}/signin", headers={"X-Forwarded-Proto": "https"})
        assert spoofed.status_code == 200
        assert "strict-transport-security" not in spoofed.headers
        assert "secure" not in _csrf_cookie(spoofed).lower()


def test_hsts_follows_the_setting(make_client: Any) -> None:
    client = make_client(worker=False, hsts_seconds=600)
    secure = client.get("https://testserver/healthz")
    assert secure.headers["strict-transport-security"] == "max-age=600"
    assert "strict-transport-security" not in client.get("http://testserver/healthz").headers
    off = make_client(worker=False, hsts_seconds=0)
    assert "strict-transport-security" not in off.get("https://testserver/healthz").headers


# --- `animatica serve` itself --------------------------------------------------------------------


@pytest.mark.slow
def test_serve_on_loopback_sells_in_test_mode_and_serves_metrics_apart(tmp_path: Path) -> None:
    port, metrics_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMATICA_")}
    env.update(
        {
            "ANIMATICA_HOME": str(tmp_path / "home"),
            "ANIMATICA_WORKER_ENABLED": "false",
            "ANIMATICA_WORKER_MODE": "thread",
            "ANIMATICA_UPLOAD_CHECK_PROCESSES": "0",
            "ANIMATICA_LOG_LEVEL": "INFO",
            "ANIMATICA_METRICS_BIND": f"127.0.0.1:{metrics_port}",
        }
    )
    command = [str(Path(sys.executable).with_name("animatica")), "serve", "--port", str(port)]
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, Path(log.name).read_text()
            assert time.monotonic() < deadline, "the server did not answer"
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert 'id="test-mode"' in httpx.get(f"{url}/pricing").text
        assert httpx.get(f"{url}/metrics").status_code == 404
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status_code == 200
        assert 'animatica_http_requests_total{method="GET",route="/healthz",status="200"}' in scraped.text
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert '"message": "payments: local (test mode)"' in output
    assert f"metrics served on 127.0.0.1:{metrics_port}" in output
