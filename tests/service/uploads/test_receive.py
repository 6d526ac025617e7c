"""Uploads are received under a size limit and named by a sanitised label: traversal names and
oversized bodies are refused, cost nothing and leave nothing behind."""

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from tests.service.uploads.posting import post as _post
from tests.service.uploads.posting import stored_files as _stored_files

from animatica.service.errors import Invalid, TooLarge
from animatica.service.uploads.receive import receive, sanitize_filename


def test_path_traversal_names_are_sanitised(
    make_client: Any, api: Any, media: dict[str, Path], settings: Any, tmp_path: Path
) -> None:
    client = make_client(worker=False, free_credits=5)
    tokens = api.signup_login(client, "alice")
    names = ["../../../../etc/passwd.png", "..\\..\\windows\\evil.png", "/abs/path/x.png", "\x00..\x1b.png"]
    for name in names:
        response = _post(
            client,
            tokens,
            (name, media["image"].read_bytes()),
            ("../../drive.mp4", media["video"].read_bytes()),
        )
        assert response.status_code == 202, response.text
        job = response.json()
        assert (
            "/" not in job["source_name"]
            and "\\" not in job["source_name"]
            and ".." not in job["source_name"]
        )
        assert job["driving_name"] == "drive.mp4"
    root = Path(settings.storage_url.removeprefix("file://"))
    for stored in _stored_files(settings):
        assert stored.resolve().is_relative_to(root.resolve())
        assert stored.name in {"source.png", "driving.mp4"}
    assert not (tmp_path / "etc").exists() and not (tmp_path / "passwd.png").exists()


def test_oversized_files_are_refused(
    make_client: Any, api: Any, media: dict[str, Path], settings: Any
) -> None:
    client = make_client(worker=False, max_upload_bytes=64 * 1024)
    tokens = api.signup_login(client, "alice")
    big = media["image"].read_bytes() + b"\x00" * (70 * 1024)
    response = _post(client, tokens, ("big.png", big), ("drive.mp4", media["video"].read_bytes()))
    assert response.status_code == 413
    assert api.credits(client, tokens) == 3 and _stored_files(settings) == []
    huge_json = client.post(
        "/api/v0/auth/login",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert huge_json.status_code == 413


def test_oversized_body_is_refused_without_reading_it(make_client: Any) -> None:
    """Drive the ASGI app directly: a body with a huge Content-Length is answered from the
    header, and a body without one is cut off once it passes the limit."""
    client = make_client(worker=False)
    app = client.app
    chunk = b"x" * (1024 * 1024)
    part_head = (
        b'--x\r\nContent-Disposition: form-data; name="source_image"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )

    async def call(headers: list[tuple[bytes, bytes]], chunks: int) -> tuple[int, int]:
        sent: list[dict[str, Any]] = []
        consumed = 0

        async def receive() -> dict[str, Any]:
            nonlocal consumed
            consumed += 1
            body = part_head + chunk if consumed == 1 else chunk
            return {"type": "http.request", "body": body, "more_body": consumed < chunks}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/v1/animations",
            "raw_path": b"/api/v1/animations",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("t", 1),
            "server": ("s", 80),
        }
        await app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        return start["status"], consumed

    limit_chunks = (2 * 20 * 1024 * 1024) // len(chunk) + 1
    declared = [(b"content-type", b"multipart/form-data; boundary=x"), (b"content-length", b"999999999999")]
    status, consumed = asyncio.run(call(declared, 1000))
    assert status == 413 and consumed == 0
    streamed = [(b"content-type", b"multipart/form-data; boundary=x"), (b"transfer-encoding", b"chunked")]
    status, consumed = asyncio.run(call(streamed, 1000))
    assert status == 413 and consumed <= limit_chunks + 1


def test_receive_streams_within_the_limit_and_refuses_empty_or_larger_files(tmp_path: Path) -> None:
    target = tmp_path / "upload.bin"
    assert receive(io.BytesIO(b"x" * 1000), target, 1000, "The file") == 1000
    assert target.read_bytes() == b"x" * 1000
    with pytest.raises(TooLarge, match="The file is larger than 0 MB"):
        receive(io.BytesIO(b"x" * 1001), target, 1000, "The file")
    with pytest.raises(Invalid, match="The file is empty"):
        receive(io.BytesIO(b""), target, 1000, "The file")
    assert sanitize_filename("../../x/é vil?.png", "fallback") == "e vil_.png"
    assert sanitize_filename("..", "fallback") == "fallback"
