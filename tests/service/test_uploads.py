"""Uploads are judged by content: markup posing as media, polyglots, traversal names and
oversized bodies are refused, cost nothing and leave nothing behind."""

import asyncio
import io
from pathlib import Path
from typing import Any

from PIL import Image


def _stored_files(settings: Any) -> list[Path]:
    root = Path(settings.storage_url.removeprefix("file://"))
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _post(client: Any, tokens: dict[str, str], source: tuple[str, bytes], video: tuple[str, bytes]) -> Any:
    return client.post(
        "/api/v1/animations",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        files={
            "source_image": (source[0], source[1], "image/jpeg"),
            "driving_video": (video[0], video[1], "video/mp4"),
        },
    )


def test_markup_and_polyglots_posing_as_images_are_refused(
    make_client: Any, api: Any, media: dict[str, Path], settings: Any
) -> None:
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    video = ("drive.mp4", media["video"].read_bytes())
    png = media["image"].read_bytes()
    jpeg = io.BytesIO()
    Image.open(media["image"]).save(jpeg, format="JPEG")
    html = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9" height="9"/></svg>'
    gif = io.BytesIO()
    Image.open(media["image"]).save(gif, format="GIF")
    cases = {
        "html named jpg": ("photo.jpg", html),
        "svg named png": ("photo.png", svg),
        "png with a page appended": ("photo.png", png + b"<html><script>alert(1)</script></html>"),
        "jpeg with a zip appended": (
            "photo.jpg",
            jpeg.getvalue() + b"PK\x03\x04" + b"\x00" * 40 + b"payload",
        ),
        "png with a script in a text chunk": (
            "photo.png",
            _png_with_text(media["image"], "<script>x()</script>"),
        ),
        "gif is not accepted": ("photo.gif", gif.getvalue()),
        "video as source": ("photo.jpg", media["video"].read_bytes()),
    }
    for name, source in cases.items():
        response = _post(client, tokens, source, video)
        assert 400 <= response.status_code < 500, (name, response.status_code)
        assert response.status_code != 402
    # An image posing as the video, and HTML posing as the video.
    assert _post(client, tokens, ("a.png", png), ("drive.mp4", png)).status_code == 415
    assert _post(client, tokens, ("a.png", png), ("drive.mp4", html)).status_code == 415
    assert api.credits(client, tokens) == 3
    assert _stored_files(settings) == []
    assert client.get("/api/v1/animations", headers=api.bearer(tokens)).json()["total"] == 0
    # The genuine JPEG is accepted.
    assert _post(client, tokens, ("photo.jpg", jpeg.getvalue()), video).status_code == 202


def _png_with_text(path: Path, text: str) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", text)
    out = io.BytesIO()
    Image.open(path).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


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


def test_videos_over_the_plan_duration_are_refused(
    make_client: Any, api: Any, tmp_path: Path, media: dict[str, Path]
) -> None:
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    long_clip = api.write_mp4(tmp_path / "long.mp4", frames=17 * 2, fps=2)  # 17 s > free plan's 15 s
    response = api.submit(client, tokens, media["image"], long_clip)
    assert response.status_code == 422 and "15 s" in response.json()["detail"]
    assert api.credits(client, tokens) == 3
