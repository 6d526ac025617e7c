"""Settings the server refuses to start with (weak or placeholder signing keys, a wildcard CORS
origin with credentials, Stripe without its key), both from `create_app` and from the real
`animatica serve` command, which must print one line and exit non-zero."""

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from animatica.service.app import create_app
from animatica.service.startup import UnsafeSettings
from animatica.settings import Settings

REPO = Path(__file__).resolve().parents[2]
ANIMATICA = Path(sys.executable).with_name("animatica")


def _k8s_example_key() -> str:
    """The signing key the shipped Kubernetes example carries, as an operator might leave it."""
    for document in yaml.safe_load_all((REPO / "deploy" / "k8s" / "config.yaml").read_text()):
        if document and document.get("kind") == "Secret":
            return str(document["stringData"]["ANIMATICA_SECRET_KEY"])
    raise AssertionError("the example Secret is gone from deploy/k8s/config.yaml")


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "worker_enabled": False,
        "worker_mode": "thread",
        "log_level": "WARNING",
        "secret_key": "a-signing-key-long-enough-for-the-start-up-check",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("short-key-19-bytes!", "is 19 bytes, shorter than 32"),
        ("abcdefghijklmnopqrstuvwxyz01234", "is 31 bytes, shorter than 32"),
        ("CHANGE-ME-TO-48-RANDOM-BYTES", "still holds a placeholder"),
        ("please-change_me-before-going-live-0123456789", "still holds a placeholder"),
        ("0" * 64, "repeats a few characters"),
    ],
)
def test_weak_signing_keys_stop_the_app(tmp_path: Path, key: str, says: str) -> None:
    with pytest.raises(UnsafeSettings, match=says) as refused:
        create_app(_settings(tmp_path, secret_key=key))
    assert key not in str(refused.value)  # the key itself is never printed
    assert not (tmp_path / "home").exists()  # refused before the database or a worker was made


def test_a_key_of_32_bytes_starts(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, secret_key="abcdefghijklmnopqrstuvwxyz012345"))) as client:
        assert client.get("/healthz").status_code == 200


def test_the_shipped_kubernetes_placeholder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeSettings, match="placeholder"):
        create_app(_settings(tmp_path, secret_key=_k8s_example_key()))


def test_an_unset_key_is_generated_random_and_private(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, secret_key=""))
    kept = tmp_path / "home" / "secret_key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert len(kept.read_text().strip().encode()) >= 32
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("origin", ["*", "null"])
def test_any_origin_with_credentials_is_refused(tmp_path: Path, origin: str) -> None:
    with pytest.raises(UnsafeSettings, match="ANIMATICA_CORS_ORIGINS"):
        create_app(_settings(tmp_path, cors_origins=["https://app.example.com", origin]))


def test_listed_origins_get_credentialed_cors(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, cors_origins=["https://app.example.com"]))) as client:
        allowed = client.get("/healthz", headers={"Origin": "https://app.example.com"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        other = client.get("/healthz", headers={"Origin": "https://evil.example.net"})
        assert "access-control-allow-origin" not in other.headers


def test_stripe_without_its_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeSettings, match="ANIMATICA_STRIPE_SECRET_KEY"):
        create_app(_settings(tmp_path, payment_provider="stripe"))


@pytest.mark.parametrize("bind", ["9464", "metrics.example.com:9464", "127.0.0.1:http", "127.0.0.1:0"])
def test_a_metrics_bind_that_is_not_an_address_is_refused(tmp_path: Path, bind: str) -> None:
    with pytest.raises(UnsafeSettings, match="ANIMATICA_METRICS_BIND"):
        create_app(_settings(tmp_path, metrics_bind=bind))


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ANIMATICA_")}
    clean.update({"ANIMATICA_HOME": str(tmp_path / "home"), "ANIMATICA_WORKER_MODE": "thread", **env})
    return subprocess.run(
        [str(ANIMATICA), "serve", "--host", "127.0.0.1", "--port", "1"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ANIMATICA_SECRET_KEY": "too-short"}, "ANIMATICA_SECRET_KEY is 9 bytes"),
        ({"ANIMATICA_SECRET_KEY": "k8s"}, "ANIMATICA_SECRET_KEY still holds a placeholder"),
        ({"ANIMATICA_CORS_ORIGINS": '["*"]'}, "ANIMATICA_CORS_ORIGINS holds '*'"),
    ],
)
def test_serve_prints_one_line_and_exits(tmp_path: Path, env: dict[str, str], says: str) -> None:
    if env.get("ANIMATICA_SECRET_KEY") == "k8s":
        env = {"ANIMATICA_SECRET_KEY": _k8s_example_key()}
    done = _serve(tmp_path, **env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"animatica: error: {says}")
    assert done.stdout == ""
