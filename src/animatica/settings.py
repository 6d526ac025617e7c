"""One typed settings object for the whole of Animatica.

Every field can be overridden by an environment variable named ``ANIMATICA_<FIELD>``
(for example ``ANIMATICA_HOME=/srv/animatica``). Modules read settings through
``get_settings()`` so that tests can point ``ANIMATICA_HOME`` at a temporary folder.
"""

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from animatica.face.onnx_swap import SwapModelFiles


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
        default="auto",
        description="'auto' uses Stripe when its secret key is set, else the simulated 'local' provider "
        "only on a server bound to a loopback address, else none.",
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
    swap_visible_watermark: bool = Field(
        default=True,
        description="Stamp a small 'AI-generated' label into a corner of every face-swap frame (the "
        "command and the service); the MP4's 'generated' tags are written whatever this says.",
    )
    liveportrait_checkpoint: str = Field(
        default="liveportrait",
        description="LivePortrait weight folder of service jobs: a folder name under the home folder's "
        "checkpoints/ or a path; empty turns the liveportrait engine off.",
    )
    vaegan_checkpoint: str = Field(
        default="vaegan-demo",
        description="VAE+GAN checkpoint of service jobs: a name (shipped, or a file in the home folder's "
        "checkpoints/) or a path; empty turns the vaegan engine off.",
    )
    swap_model: str = Field(
        default="",
        description="Path of your own ONNX face swapper (inswapper_128 kind) for the faceswap-onnx engine; "
        "with swap_identity_model set too, face swaps use it by default.",
    )
    swap_identity_model: str = Field(
        default="",
        description="Path of the ONNX face recogniser (ArcFace w600k kind) that feeds swap_model.",
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
    job_kinds: str = Field(
        default="",
        description="Modules declaring extra job kinds (comma-separated), imported by every process "
        "that runs jobs; animation is built in.",
    )
    # --- service: job bounds and shutdown ---
    job_timeout_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Longest a job may animate; 0 derives it from the driving video: 300 s + 2 s per frame.",
    )
    job_stall_seconds: float = Field(
        default=900.0, ge=0, description="A job silent this long (no progress report) is stopped; 0: never."
    )
    job_memory_mb: int = Field(
        default=8192,
        ge=0,
        description="Address-space cap of the process that animates a job (none with CUDA); 0: none.",
    )
    shutdown_grace_seconds: float = Field(
        default=5.0,
        ge=0,
        description="On SIGTERM: how long open requests, then a running job, may take to finish; "
        "a job still running after it goes back to the queue.",
    )
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
    # --- service: production safety (metrics access, proxy, HSTS) ---
    metrics_token: str = Field(
        default="", description="Bearer token /metrics requires; without one /metrics answers 404."
    )
    metrics_bind: str = Field(
        default="", description="host:port of a separate, unauthenticated metrics listener (serve only)."
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Comma-separated proxy addresses whose X-Forwarded-For/-Proto are trusted ('*': any).",
    )
    hsts_seconds: int = Field(
        default=31_536_000, ge=0, description="max-age of Strict-Transport-Security on https; 0: not sent."
    )
    # --- service: rate limits and request caps (abuse and overload protection) ---
    # Rates are "N/period" items joined by ";" (e.g. "30/minute;300/hour"); an empty string: no limit.
    redis_url: str = Field(
        default="",
        description="Redis (redis://…) where app processes share rate-limit counts; unset: the broker's "
        "when it is Redis, else each process counts on its own.",
    )
    rate_limit_login: str = Field(
        default="30/minute;300/hour", description="Login attempts (API and sign-in page) per client address."
    )
    rate_limit_login_account: str = Field(
        default="10/minute;100/hour", description="Login attempts per username, from any address."
    )
    rate_limit_signup: str = Field(default="20/hour;100/day", description="Sign-ups per client address.")
    rate_limit_refresh: str = Field(
        default="60/minute;600/hour", description="Token refreshes per client address."
    )
    rate_limit_submit: str = Field(
        default="60/minute;600/hour", description="Animations submitted per client address."
    )
    rate_limit_submit_account: str = Field(
        default="30/minute;300/hour", description="Animations submitted per account."
    )
    password_hash_concurrency: int = Field(
        default=4, ge=1, description="Password hashes computed at once per process (64 MiB each)."
    )
    password_hash_queue: int = Field(
        default=8, ge=0, description="Password checks that may wait for a slot; more get 503 + Retry-After."
    )
    sync_requests_per_user: int = Field(
        default=1, ge=1, description="Requests of one user waiting on /api/v0/animation/video at once."
    )
    sync_requests_total: int = Field(
        default=16, ge=1, description="Requests of all users waiting on /api/v0/animation/video at once."
    )
    live_sessions_per_user: int = Field(
        default=1, ge=1, description="Live (webcam) sessions one user may have open at once."
    )
    # --- picture creation: the operator's own weights (nothing is downloaded); empty: not configured ---
    diffusion_model: str = Field(
        default="",
        description="Stable Diffusion weights: a diffusers folder, or a .safetensors file with its config "
        "folder beside it (same name without the extension).",
    )
    inpaint_model: str = Field(default="", description="An inpainting model (9-channel UNet), same forms.")
    upscale_model: str = Field(
        default="", description="The x4 upscaler (stable-diffusion-x4-upscaler layout); unset: a resampler."
    )
    controlnet_models: dict[str, str] = Field(
        default_factory=dict,
        description='Condition -> ControlNet folder or file, as JSON: {"face": "/m/cn-face", "pose": …}.',
    )
    lora_dir: str = Field(default="", description="Folder of LoRA .safetensors files users may pick.")
    caption_model: str = Field(default="", description="Captioning model folder (BLIP-style, transformers).")
    prompt_llm: str = Field(default="", description="Local LLM folder that rewrites prompts (transformers).")
    vgg_weights: str = Field(
        default="", description="torchvision-format VGG16/19 weights for style transfer."
    )
    prompt_blocklist: str = Field(default="", description="File of refused prompt words, one a line.")
    safety_checker: str = Field(default="", description="Safety-checker model folder run on every picture.")
    image_attention_slicing: bool = Field(
        default=False, description="Attention in slices: less memory, a little slower."
    )
    image_vae_tiling: bool = Field(default=False, description="Decode large pictures tile by tile.")

    @field_validator(
        "rate_limit_login",
        "rate_limit_login_account",
        "rate_limit_signup",
        "rate_limit_refresh",
        "rate_limit_submit",
        "rate_limit_submit_account",
    )
    @classmethod
    def _check_rate(cls, value: str) -> str:
        """A typo in a limit must stop the server at start, not silently leave an endpoint open."""
        from limits import parse_many

        value = value.strip()
        if value:
            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a rate such as '30/minute;300/hour'") from exc
        return value

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
    def swap_model_files(self) -> "SwapModelFiles":
        """The operator's ONNX face-swap models (either may be empty: not configured)."""
        from animatica.face.onnx_swap import SwapModelFiles

        return SwapModelFiles(self.swap_model, self.swap_identity_model)

    @property
    def checkpoints_dir(self) -> Path:
        """Where named checkpoints are looked up besides the ones the package ships."""
        return self.home / "checkpoints"


@lru_cache
def get_settings() -> Settings:
    return Settings()
