"""Request and response bodies of the HTTP API (the /api/v0 field names where that API has them)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class Credentials(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@+-]+$")
    password: str = Field(min_length=8, max_length=256)


class LoginBody(BaseModel):
    # Login does not re-validate the pattern: a wrong name is just "Invalid credentials".
    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=8, max_length=256)


class Tokens(BaseModel):
    token_name: str = "Bearer"
    access_token: str
    refresh_token: str
    access_expires_in: int
    refresh_expires_in: int


class RefreshBody(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutBody(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=512)


class PaymentConfirmation(BaseModel):
    session_id: str = Field(min_length=1, max_length=255)
    product_id: str | None = Field(
        default=None, max_length=255, description="Ignored: the plan is the checkout's."
    )


class JobView(BaseModel):
    id: str
    kind: str = Field(
        default="animation", description="``animation`` (an MP4 result) or ``portrait_edit`` (a PNG result)."
    )
    status: str
    progress: float
    stage: str
    eta_seconds: float | None
    error: str | None
    engine: str = Field(description="The engine the job runs on (``auto`` is resolved on submission).")
    options: dict[str, Any] = Field(
        description="The job's options (``jobs.options.JobOptions`` without the engine): what the user "
        "chose, and the length limit in frames and frame rate measured on the upload."
    )
    source_name: str
    driving_name: str
    frames: int | None
    fps: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result_url: str | None
    notes: list[str] = Field(
        default_factory=list, description="What the service changed on its own, e.g. a picture scaled down."
    )


class JobPage(BaseModel):
    items: list[JobView]
    total: int
    limit: int
    offset: int


class Me(BaseModel):
    id: int
    username: str
    plan: str
    credits: int


class EngineView(BaseModel):
    id: str
    available: bool
    reason: str | None = Field(description="Why the engine cannot run on this server, when it cannot.")


class EngineList(BaseModel):
    default: str = Field(description="The engine a job runs on when it names none.")
    engines: list[EngineView]
