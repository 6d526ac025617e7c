"""The synchronous endpoint /api/v0/animation/video: requests that wait for their job hold no
server thread, are capped per user and overall, queue like any other job of their plan, and stop
waiting when their client hangs up.

Jobs are held in the fake executor's gate, so requests stay waiting exactly as long as a test needs.
"""

import inspect
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from animatica.db.models import Job, User
from animatica.service.ratelimit import SyncSlots, sync_slots
from animatica.service.routes import v0 as routes_v0

WAIT = 120.0  # generous: only a broken build waits this long


@pytest.fixture
def held(executor: Any, make_client: Any) -> Iterator[Any]:
    """The fake executor with its gate shut: jobs start but do not finish until the test opens it.

    Set up after the clients, so it is torn down before them: a failing test still lets its jobs
    (and the requests waiting on them) finish, and the app can shut down.
    """
    executor.gate.clear()
    yield executor
    executor.gate.set()


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    pause = threading.Event()
    for _ in range(int(WAIT / 0.02)):
        if condition():
            return
        pause.wait(0.02)
    raise AssertionError(f"timed out waiting until {what}")


def _post_sync(client: Any, tokens: dict[str, str], image: Path, video: Path) -> Any:
    with image.open("rb") as img, video.open("rb") as vid:
        return client.post(
            "/api/v0/animation/video",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            files={"source_image": ("s.png", img, "image/png"), "driving_video": ("d.mp4", vid, "video/mp4")},
        )


class _Waiting:
    """A sync request sent from its own thread, whose response is looked at later."""

    def __init__(self, client: TestClient, tokens: dict[str, str], media: dict[str, Path]) -> None:
        self.response: Any = None
        self._thread = threading.Thread(
            target=lambda: setattr(
                self, "response", _post_sync(client, tokens, media["image"], media["video"])
            ),
            daemon=True,  # a failed test must not keep the test run alive waiting for it
        )
        self._thread.start()

    def result(self) -> Any:
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the synchronous request never answered"
        return self.response


def _jobs_of(db: Any, username: str) -> list[Job]:
    with db.read() as session:
        return list(
            session.scalars(select(Job).join(User, User.id == Job.user_id).where(User.username == username))
        )


def _job_count(db: Any) -> int:
    with db.read() as session:
        return len(session.scalars(select(Job.id)).all())


def _video(response: Any) -> bool:
    return bool(response.status_code == 200 and response.content[4:8] == b"ftyp")


def test_the_route_is_a_coroutine_that_waits_on_the_event_loop() -> None:
    source = inspect.getsource(routes_v0.animate_sync)
    assert inspect.iscoroutinefunction(routes_v0.animate_sync)
    assert "time.sleep" not in source and "anyio.sleep" in source


def test_waiting_sync_requests_leave_the_server_threads_to_other_routes(
    make_client: Any, api: Any, media: dict[str, Path], held: Any, db: Any
) -> None:
    # The timeout only bounds how long a broken build keeps requests open after a failure.
    client = make_client(
        worker=True, sync_requests_total=5, upload_check_processes=0, sync_timeout_seconds=2 * WAIT
    )
    users = [api.signup_login(client, f"waiter{n}") for n in range(5)]

    async def three_threads() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 3

    # More requests will wait than the server has threads for requests.
    client.portal.call(three_threads)
    waiting = [_Waiting(client, tokens, media) for tokens in users]
    _wait_until(lambda: _job_count(db) == 5, "all five requests have queued their job")
    _wait_until(lambda: sync_slots(client.app.state.ctx).open == 5, "all five requests wait")

    answered: dict[str, Any] = {}

    def other_routes() -> None:
        tokens = api.signup_login(client, "newcomer")  # two password hashes in the thread pool
        answered["me"] = client.get("/api/v1/me", headers=api.bearer(tokens))
        answered["history"] = client.get("/api/v1/animations", headers=api.bearer(users[0]))

    visitor = threading.Thread(target=other_routes, daemon=True)
    visitor.start()
    visitor.join(WAIT)
    assert not visitor.is_alive(), "other routes got no thread while sync requests waited"
    assert answered["me"].json()["username"] == "newcomer"
    assert answered["history"].json()["total"] == 1
    assert [w.response for w in waiting] == [None] * 5, [w.response.text for w in waiting if w.response]

    held.gate.set()
    assert all(_video(w.result()) for w in waiting)
    assert [api.credits(client, tokens) for tokens in users] == [2] * 5


def test_sync_requests_are_capped_per_user_and_overall(
    make_client: Any, api: Any, media: dict[str, Path], held: Any, db: Any, tmp_path: Path
) -> None:
    client = make_client(worker=True, sync_requests_total=2, sync_timeout_seconds=2 * WAIT)
    alice, bob, carol = (api.signup_login(client, name) for name in ("alice", "bob", "carol"))

    first = _Waiting(client, alice, media)
    _wait_until(lambda: len(_jobs_of(db, "alice")) == 1, "alice's job is queued")
    again = _Waiting(client, alice, media).result()
    assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 1
    assert "already waiting" in again.json()["detail"]
    assert api.credits(client, alice) == 2  # the refused request reserved nothing
    assert len(_jobs_of(db, "alice")) == 1
    # The jobs API is not capped this way: it answers at once.
    assert api.submit(client, alice, media["image"], media["video"]).status_code == 202

    second = _Waiting(client, bob, media)
    _wait_until(lambda: sync_slots(client.app.state.ctx).open == 2, "two requests wait")
    full = _Waiting(client, carol, media).result()
    assert full.status_code == 429 and int(full.headers["Retry-After"]) >= 1
    assert "Too many animations are being waited for" in full.json()["detail"]
    assert api.credits(client, carol) == 3 and _jobs_of(db, "carol") == []

    held.gate.set()
    assert _video(first.result()) and _video(second.result())
    # Places are given back, after a success as after a refused upload.
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    assert _post_sync(client, carol, media["image"], bad).status_code == 415
    assert _video(_post_sync(client, carol, media["image"], media["video"]))
    assert _video(_post_sync(client, alice, media["image"], media["video"]))
    assert sync_slots(client.app.state.ctx).open == 0


def test_sync_jobs_do_not_jump_ahead_of_jobs_queued_before_them(
    make_client: Any, api: Any, media: dict[str, Path], held: Any, db: Any
) -> None:
    from sqlalchemy import update

    client = make_client(worker=True)  # one job at a time
    blocker, paid, early, syncer = (
        api.signup_login(client, n) for n in ("blocker", "paid", "early", "syncer")
    )
    with db.transaction() as session:
        session.execute(update(User).where(User.username == "paid").values(plan_id="pro"))

    assert api.submit(client, blocker, media["image"], media["video"]).status_code == 202
    assert held.started.wait(WAIT)  # the worker is busy with the blocker's job
    paid_job = api.submit(client, paid, media["image"], media["video"]).json()["id"]
    early_job = api.submit(client, early, media["image"], media["video"]).json()["id"]
    waiting = _Waiting(client, syncer, media)
    _wait_until(lambda: len(_jobs_of(db, "syncer")) == 1, "the sync job is queued")

    held.gate.set()
    assert _video(waiting.result())
    for tokens, job_id in ((paid, paid_job), (early, early_job)):
        assert api.wait_for(client, tokens, job_id, timeout=WAIT)["status"] == "succeeded"
    with db.read() as session:
        started = {row.id: row.started_at for row in session.execute(select(Job.id, Job.started_at))}
    (sync_job,) = _jobs_of(db, "syncer")
    assert sync_job.priority == 0  # the free plan's, as for any of its jobs
    # The paid plan goes first; within a plan, the earlier job does.
    assert started[paid_job] < started[early_job] < started[sync_job.id]


def test_a_sync_job_that_outlasts_the_timeout_is_canceled_and_its_credit_returned(
    make_client: Any, api: Any, media: dict[str, Path], db: Any
) -> None:
    client = make_client(worker=False, sync_timeout_seconds=0.3)  # no worker: the job never starts
    alice = api.signup_login(client, "alice")
    response = _post_sync(client, alice, media["image"], media["video"])
    assert response.status_code == 504 and "took too long" in response.json()["detail"]
    assert api.credits(client, alice) == 3
    assert [job.status for job in _jobs_of(db, "alice")] == ["canceled"]
    assert sync_slots(client.app.state.ctx).open == 0


def test_a_client_that_hangs_up_stops_waiting_and_its_job_goes_on(
    settings: Any, executor: Any, api: Any, media: dict[str, Path], db: Any
) -> None:
    import uvicorn

    from animatica.service.app import create_app

    executor.gate.clear()
    app = create_app(settings.model_copy(update={"worker_enabled": True}), executor=executor)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    host, port = listener.getsockname()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        _wait_until(lambda: server.started or not thread.is_alive(), "the server starts")
        assert server.started
        slots: SyncSlots = sync_slots(app.state.ctx)
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=WAIT) as http:
            tokens = api.signup_login(http, "alice")
            with media["image"].open("rb") as img, media["video"].open("rb") as vid:
                request = http.build_request(
                    "POST",
                    "/api/v0/animation/video",
                    headers=api.bearer(tokens),
                    files={"source_image": ("s.png", img, "image/png"), "driving_video": ("d.mp4", vid)},
                )
                body = request.read()
            head = f"POST /api/v0/animation/video HTTP/1.1\r\nHost: {host}:{port}\r\n" + "".join(
                f"{name}: {value}\r\n" for name, value in request.headers.items() if name.lower() != "host"
            )
            with socket.create_connection((host, port)) as raw:
                raw.sendall(head.encode() + b"\r\n" + body)
                _wait_until(lambda: slots.open == 1, "the request waits for its job")
            # The connection is closed: the request stops waiting and gives its place back.
            _wait_until(lambda: slots.open == 0, "the request notices its client left")
            (job,) = _jobs_of(db, "alice")
            assert job.status in ("queued", "running")
            executor.gate.set()
            assert api.wait_for(http, tokens, job.id, timeout=WAIT)["status"] == "succeeded"
    finally:
        executor.gate.set()
        server.should_exit = True
        thread.join(WAIT)
        listener.close()
