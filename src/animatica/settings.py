"""One typed settings object for the whole of Animatica.

Every field can be overridden by an environment variable named ``ANIMATICA_<FIELD>``
(for example ``ANIMATICA_HOME=/srv/animatica``). Modules read settings through
``get_settings()`` so that tests can point ``ANIMATICA_HOME`` at a temporary folder.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
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

    @property
    def checkpoints_dir(self) -> Path:
        """Where named checkpoints are looked up besides the ones the package ships."""
        return self.home / "checkpoints"


@lru_cache
def get_settings() -> Settings:
    return Settings()
