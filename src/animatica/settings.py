"""One typed settings object for the whole of Animatica.

Every field can be overridden by an environment variable named ``ANIMATICA_<FIELD>``
(for example ``ANIMATICA_HOME=/srv/animatica``). Modules read settings through
``get_settings()`` so that tests can point ``ANIMATICA_HOME`` at a temporary folder.
"""

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "animatica"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANIMATICA_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Folder for all local state.")
    device: str = Field(default="auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    torch_threads: int = Field(default=0, description="Threads for torch on CPU; 0 means all cores.")
    batch_size: int = Field(default=4, ge=1, description="Driving frames animated per forward pass.")
    max_image_pixels: int = Field(
        default=64_000_000, description="Larger images are refused (decompression-bomb guard)."
    )
    max_video_frames: int = Field(default=100_000, description="Longer driving videos are refused.")

    # --- service: state locations (filled from `home` when unset) ---
    database_url: str = Field(default="", description="SQLAlchemy URL; default SQLite under home.")
    storage_url: str = Field(default="", description="file:///folder or s3://bucket/prefix.")
    secret_key: str = Field(
        default="", description="Signs tokens; generated and kept in <home>/secret_key when unset."
    )
    # --- service: accounts and credits ---
    free_credits: int = Field(default=3, ge=0, description="Credits granted to every new account.")
    access_token_seconds: int = Field(default=900, ge=30, description="Lifetime of an access token.")
    refresh_token_seconds: int = Field(default=30 * 24 * 3600, ge=60, description="Refresh lifetime.")
    token_issuer: str = "Animatica"
    # --- service: payments ---
    payment_provider: Literal["auto", "local", "stripe", "none"] = Field(
        default="auto", description="'auto' uses Stripe when its secret key is set, else 'local'."
    )
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_prices: dict[str, str] = Field(
        default_factory=dict, description="Plan id -> Stripe price id, as JSON."
    )
    public_base_url: str = Field(
        default="http://localhost:8000", description="Where browsers reach the service."
    )
    # --- service: uploads and limits ---
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, description="Per uploaded file.")
    max_json_bytes: int = Field(default=1024 * 1024, ge=1024, description="Per non-upload body.")
    sync_max_seconds: float = Field(
        default=10.0, gt=0, description="Longest driving clip the synchronous endpoint accepts."
    )
    sync_timeout_seconds: float = Field(default=600.0, gt=0)
    engine: str = Field(default="landmarks", description="Engine used when a job does not name one.")
    ml_engine_key: str = Field(default="", description="Enables POST /api/fomm/video when set.")
    fomm_checkpoint: str = Field(
        default="demo",
        description="FOMM checkpoint of service jobs: a shipped or home-folder name, or a path; "
        "empty turns the fomm engine off.",
    )
    fomm_config: str | None = Field(
        default=None,
        description="Config of that checkpoint (YAML path or built-in name); None: the one it stores.",
    )
    # --- service: worker and retention ---
    worker_enabled: bool = True
    worker_concurrency: int = Field(default=1, ge=1, description="Jobs animated at the same time.")
    worker_mode: Literal["process", "thread"] = Field(
        default="process",
        description="'process' animates in child processes so requests stay fast; 'thread' in the server.",
    )
    upload_check_processes: int = Field(
        default=2,
        ge=0,
        description="Processes that decode uploads to check them, off the request threads (0: in them).",
    )
    job_poll_seconds: float = Field(default=1.0, gt=0)
    job_heartbeat_seconds: float = Field(default=5.0, gt=0)
    job_stale_seconds: float = Field(
        default=60.0, gt=0, description="A running job silent this long is taken as abandoned."
    )
    job_max_attempts: int = Field(default=2, ge=1)
    input_retention_hours: float = Field(default=24.0, gt=0)
    result_retention_days: float = Field(default=7.0, gt=0)
    # --- distributed mode (Celery); an empty broker_url keeps the in-process runner ---
    broker_url: str = Field(
        default="",
        description="Celery broker (amqp://… RabbitMQ or redis://…); when set, jobs run on Celery workers.",
    )
    celery_queue: str = Field(default="animatica", description="Broker queue the workers consume.")
    segment_seconds: float = Field(default=5.0, gt=0, description="Length of one segment of a job.")
    segments_per_user: int = Field(
        default=3, ge=1, description="Segments of one user queued or running at once, over all workers."
    )
    task_soft_time_limit: float = Field(
        default=10800.0, gt=0, description="Seconds before a task is asked to stop."
    )
    task_time_limit: float = Field(default=11000.0, gt=0, description="Seconds before a task is killed.")
    task_max_retries: int = Field(default=3, ge=0, description="Retries of a failed task, with backoff.")
    broker_visibility_timeout: float = Field(
        default=43200.0, gt=0, description="Redis: seconds before an unacknowledged task is redelivered."
    )
    contact: str = Field(
        default="", description="How people reach the operator, on the About page: an e-mail or an https URL."
    )
    # --- service: operations ---
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    cors_origins: list[str] = Field(default_factory=list)
    debug: bool = False

    @model_validator(mode="after")
    def _fill_locations(self) -> "Settings":
        """Derive state locations from `home` so one variable moves all local state."""
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'animatica.db'}"
        if not self.storage_url:
            self.storage_url = (self.home / "files").as_uri()
        return self

    def resolved_secret_key(self) -> str:
        """The signing key; generated once and kept under home so tokens survive restarts."""
        if self.secret_key:
            return self.secret_key
        path = self.home / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.home.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        tmp = path.with_name(f".secret_key.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        try:
            # link() fails if another process won the race; then its key is the one to use.
            os.link(tmp, path)
        except FileExistsError:
            key = path.read_text().strip()
        finally:
            tmp.unlink()
        return key

    @property
    def checkpoints_dir(self) -> Path:
        """Where named checkpoints are looked up besides the ones the package ships."""
        return self.home / "checkpoints"


@lru_cache
def get_settings() -> Settings:
    return Settings()
