"""The job page's Server-Sent Events: the stream itself (no HTTP), and over HTTP a queued job
followed until it is canceled, another user's job refused, a finished job sent once."""

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from tests.web.test_pages_http import _settings, csrf, sign_up, upload

from animatica.service.pages import events


class _SteppedClock:
    """The stream's anyio, for the thread that runs it: ``sleep`` moves a clock of its own on by
    exactly the time asked, so what the stream sends follows from its arguments and not from how
    busy the machine is. Other threads (a live server) get the real anyio; so does every other name."""

    def __init__(self) -> None:
        self.now = 0.0
        self.thread: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(anyio, name)

    def current_time(self) -> float:
        return self.now if threading.get_ident() == self.thread else anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        if threading.get_ident() != self.thread:
            await anyio.sleep(seconds)
            return
        self.now += seconds
        await anyio.sleep(0)


def _collect(statuses: list[dict[str, Any]], **options: float) -> list[str]:
    """Run the stream over a scripted sequence of statuses (the last one repeats)."""
    calls = {"n": 0}
    clock = _SteppedClock()

    async def fetch() -> dict[str, Any]:
        calls["n"] += 1
        return statuses[min(calls["n"], len(statuses)) - 1]

    async def connected() -> bool:
        return False

    async def run() -> list[str]:
        clock.thread = threading.get_ident()
        return [message async for message in events.status_events(fetch, connected, **options)]

    # In a thread of its own: the browser tests keep an event loop running in this one.
    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(1) as pool:
        patch.setattr(events, "anyio", clock)
        return pool.submit(anyio.run, run).result(60)


def _data(messages: list[str]) -> list[dict[str, Any]]:
    return [json.loads(m.split("data: ", 1)[1]) for m in messages if m.startswith("event: status")]


def test_stream_sends_changes_only_and_ends_when_final() -> None:
    queued, running = {"status": "queued", "progress": 0}, {"status": "running", "progress": 40}
    done = {"status": "succeeded", "progress": 100}
    messages = _collect([queued, queued, running, running, done], check_seconds=0.001)
    assert _data(messages) == [queued, running, done]
    assert all(m.endswith("\n\n") and m.count("\n") == 3 for m in messages)


def test_stream_keeps_alive_and_stops_at_its_lifetime() -> None:
    # Five quiet seconds on the stepped clock: a keep-alive each second, then the end at the lifetime.
    messages = _collect([{"status": "queued"}], check_seconds=0.25, keepalive=1, lifetime=5)
    assert _data(messages) == [{"status": "queued"}]
    assert messages.count(": still here\n\n") == 5


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    from animatica.service.app import create_app

    with TestClient(create_app(_settings(tmp_path)), follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def files(tmp_path: Path) -> dict[str, bytes]:
    from PIL import Image

    from animatica.demo import write_demo_driving

    Image.new("RGB", (128, 96), (200, 120, 40)).save(tmp_path / "face.png")
    video = write_demo_driving(tmp_path / "drive.mp4", seconds=0.4, fps=10, size=64)
    return {"image": (tmp_path / "face.png").read_bytes(), "video": video.read_bytes()}


def test_job_events_follow_a_job_until_it_ends(
    client: TestClient, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "STREAM_SECONDS", 30.0)
    sign_up(client, "alice")
    job_id = upload(client, files).headers["location"].rsplit("/", 1)[1]
    seen: list[dict[str, Any]] = []
    with client.stream("GET", f"/jobs/{job_id}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if len(seen) == 1:  # the worker is off: cancel it from the page meanwhile
                    client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf(client)})
    assert [s["status"] for s in seen] == ["queued", "canceled"]
    assert seen[0]["stage_label"] and seen[0]["id"] == job_id

    with client.stream("GET", f"/jobs/{job_id}/events") as again:  # final: one event, then the end
        lines = [line for line in again.iter_lines() if line.startswith("data: ")]
    assert [json.loads(line[6:])["status"] for line in lines] == ["canceled"]

    client.cookies.clear()
    sign_up(client, "mallory")
    assert client.get(f"/jobs/{job_id}/events").status_code == 404
    client.cookies.clear()
    assert client.get(f"/jobs/{job_id}/events").status_code == 401
