"""Fixtures for the web pages: a live server on a free port, Debian's Chromium driven by
Playwright, real media files, and a place for screenshots.

Browser tests are skipped (with the reason) when Playwright or /usr/bin/chromium is missing;
CI installs both. Screenshots go to ``artifacts/screenshots/`` (git-ignored), or to
``$ANIMATICA_SCREENSHOTS`` when that is set.
"""

import importlib.util
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from animatica.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("ANIMATICA_SCREENSHOTS", REPO / "artifacts" / "screenshots"))
UPLOAD_LIMIT = 3 * 1024 * 1024
WAIT_MS = 60_000
PASSWORD = "correct horse battery"


def _browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright)"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    settings: Settings


def _bound_socket() -> socket.socket:
    """A socket bound to a free port, handed to the server as it is: finding a free port and binding
    it later would leave a moment in which another process could take it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real app (real pipeline, `landmarks` engine, SQLite, local files) under uvicorn."""
    with serve_app(tmp_path_factory.mktemp("web-home")) as server:
        yield server


@contextmanager
def serve_app(home: Path, **overrides: Any) -> Iterator[LiveServer]:
    """The real app under uvicorn on a free port, with the web tests' settings and ``overrides``
    (for a module that needs a server configured its own way)."""
    import uvicorn

    from animatica.service.app import create_app

    reason = _browser_missing()
    if reason:
        pytest.skip(f"browser tests need Chromium and Playwright: {reason}")
    sock = _bound_socket()
    port = int(sock.getsockname()[1])
    values: dict[str, Any] = {
        "home": home,
        "secret_key": "web-test-secret-key-long-enough-for-hs256-signing",
        "public_base_url": f"http://127.0.0.1:{port}",
        "max_upload_bytes": UPLOAD_LIMIT,
        "torch_threads": 1,
        "job_poll_seconds": 0.1,
        "log_level": "WARNING",
    }
    settings = Settings(**{**values, **overrides})
    app = create_app(settings, bind_host="127.0.0.1")  # as `make run`: test-mode payments on loopback
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # generous: start-up spawns the worker and check processes
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", app, settings)
    server.should_exit = True
    thread.join(timeout=60)
    sock.close()


@pytest.fixture(scope="session")
def browser(live_server: LiveServer, chromium: Any) -> Any:
    """Chromium, once the shared live server is up."""
    return chromium


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Chromium alone, for a module that serves the app its own way (`serve_app`)."""
    from playwright.sync_api import expect, sync_playwright

    reason = _browser_missing()
    if reason:
        pytest.skip(f"browser tests need Chromium and Playwright: {reason}")
    # Waits end when their condition holds; the limit only decides how long a real failure takes
    # to report, so it is generous enough for a busy two-core machine running the worker beside.
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any, live_server: LiveServer) -> Iterator[Callable[..., Any]]:
    """Pages in fresh browser contexts (own cookies); extra options go to new_context."""
    contexts: list[Any] = []

    def factory(**options: Any) -> Any:
        context = browser.new_context(
            base_url=live_server.url,
            accept_downloads=True,
            viewport=options.pop("viewport", {"width": 1280, "height": 860}),
            **options,
        )
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        return page

    yield factory
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    return new_page()


@contextmanager
def open_page(browser: Any, url: str) -> Iterator[Any]:
    """A page of ``url`` in a fresh context of ``browser``, for a module with a server of its own."""
    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_up(page: Any, username: str, password: str = PASSWORD) -> None:
    page.goto("/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Confirm password").fill(password)
    page.get_by_label("I have read and accept").check()
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/create")


def credit_count(page: Any) -> int:
    return int(page.locator("#credit-balance").get_attribute("data-credits"))


def expect_credits(page: Any, credits: int) -> None:
    """Wait until the page shows this balance: a change shows once the page that renders it loads."""
    from playwright.sync_api import expect

    expect(page.locator("#credit-balance")).to_have_attribute("data-credits", str(credits))


class WorkerGate:
    """Keeps the live server's worker from starting queued jobs while held, so that a test can look
    at a job in the queue, or cancel it there, without racing the worker."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def allows(self) -> bool:
        return self._open.is_set()


@pytest.fixture
def worker_gate(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerGate]:
    """The worker claims jobs through the real store, only not while the gate is held."""
    from animatica.jobs import runner

    gate = WorkerGate()
    claim = runner.state.claim_next

    def gated_claim(*args: Any, **kwargs: Any) -> Any:
        return claim(*args, **kwargs) if gate.allows() else None

    monkeypatch.setattr(runner.state, "claim_next", gated_claim)
    yield gate
    gate.release()


@dataclass(frozen=True)
class Media:
    face: Path
    driving: Path
    text: Path
    fake_jpeg: Path
    huge_video: Path


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    """A real photographed face, a generated 1 s driving clip, and files the site must refuse."""
    from skimage import data

    from animatica.demo import write_demo_driving

    folder = tmp_path_factory.mktemp("web-media")
    face = folder / "astronaut.png"
    Image.fromarray(data.astronaut()[0:300, 100:400]).resize((256, 256)).save(face)
    driving = write_demo_driving(folder / "talking.mp4", seconds=1)
    text = folder / "notes.txt"
    text.write_text("not a picture\n")
    fake_jpeg = folder / "holiday.jpg"
    fake_jpeg.write_bytes(b"<!doctype html><html><body><script>alert(1)</script></body></html>")
    huge_video = folder / "huge.mp4"
    huge_video.write_bytes(np.random.default_rng(0).bytes(UPLOAD_LIMIT + 512 * 1024))
    return Media(face, driving, text, fake_jpeg, huge_video)


@pytest.fixture
def web() -> Any:
    """The helpers above, for test modules (importlib mode cannot import conftest by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        screenshot=screenshot,
        sign_up=sign_up,
        credit_count=credit_count,
        expect_credits=expect_credits,
        password=PASSWORD,
        chromium=CHROMIUM,
        chromium_args=CHROMIUM_ARGS,
        serve_app=serve_app,
        open_page=open_page,
        wait_ms=WAIT_MS,
    )
