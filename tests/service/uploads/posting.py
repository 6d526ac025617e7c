"""Posting an upload through the API, and the files the service stored: shared by the upload tests."""

from pathlib import Path
from typing import Any


def stored_files(settings: Any) -> list[Path]:
    root = Path(settings.storage_url.removeprefix("file://"))
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def post(client: Any, tokens: dict[str, str], source: tuple[str, bytes], video: tuple[str, bytes]) -> Any:
    return client.post(
        "/api/v1/animations",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        files={
            "source_image": (source[0], source[1], "image/jpeg"),
            "driving_video": (video[0], video[1], "video/mp4"),
        },
    )
