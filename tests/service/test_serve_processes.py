"""A server of several processes: web processes, one job runner per database, metrics summed.

The first tests elect runners on a real database (SQLite and PostgreSQL) with a stand-in for the
runner, in this process and across processes. The slow ones run the real commands on free ports:
``animatica serve --workers 2`` and ``uvicorn --factory … --workers 2``, submit a real job
(landmarks engine) and stop them with SIGTERM.
"""

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.process_tree import (
    Server,
    free_port,
    in_session,
    serve_command,
    server_env,
    signed_in,
    wait_gone,
    wait_status,
)

from animatica.db import Database
from animatica.jobs.runner_process import RunnerHost, doorbell_address, ring, runner_lock
from animatica.settings import Settings

LIMITS_OFF = {
    f"ANIMATICA_{name.upper()}": "" for name in Settings.model_fields if name.startswith("rate_limit_")
}
WAIT = 60.0


def _wait_until(condition: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


class StandIn:
    """Records what a host asks of its runner."""

    def __init__(self) -> None:
        self.executor = object()
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.rings = 0
        self.canceled: list[str] = []

    def start(self) -> None:
        self.started.set()

    def stop(self, grace: float | None = None, release: Any = None) -> None:
        self.stopped.set()

    def notify(self) -> None:
        self.rings += 1

    def cancel_local(self, job_id: str) -> None:
        self.canceled.append(job_id)


def _host(db: Database, runner: StandIn, **options: Any) -> RunnerHost:
    lock, address = runner_lock(db.engine), doorbell_address(db.engine)
    return RunnerHost(runner, lock, address, retry_seconds=0.05, **options)  # type: ignore[arg-type]


def test_one_process_hosts_the_runner_the_others_ring_and_one_takes_over(db: Database) -> None:
    first, second = StandIn(), StandIn()
    host, other = _host(db, first), _host(db, second)
    try:
        host.start()
        assert host.hosting and first.started.is_set()
        other.start()
        assert not other.hosting and not second.started.is_set()

        other.notify()  # a job queued by the other process wakes the runner here
        _wait_until(lambda: first.rings == 1, "the hosting runner is woken")
        host.notify()
        assert first.rings == 2 and second.rings == 0
        other.cancel_local("job-1")  # nothing runs there; the database flag reaches the runner
        assert second.canceled == ["job-1"] and first.canceled == []

        host.stop()
        assert first.stopped.is_set() and not host.hosting
        _wait_until(lambda: other.hosting, "the standing-by process takes over")
        assert second.started.is_set()
        other.notify()
        assert second.rings == 1
    finally:
        host.stop()
        other.stop()
    assert second.stopped.is_set()


def test_a_web_process_of_serve_never_hosts_and_only_rings(db: Database) -> None:
    web, runner = StandIn(), StandIn()
    host = _host(db, runner)
    web_host = _host(db, web, may_host=False)
    try:
        web_host.start()
        assert not web_host.hosting and not web.started.is_set()
        host.start()
        assert host.hosting  # the web process took no lock
        web_host.notify()
        _wait_until(lambda: runner.rings == 1, "the runner process is woken")
    finally:
        web_host.stop()
        host.stop()
    assert not web.stopped.is_set()


def test_ringing_with_nobody_listening_is_harmless(db: Database) -> None:
    ring(doorbell_address(db.engine))
    ring(None)


_HOLD = """
import sys
from animatica.db import Database
from animatica.jobs.runner_process import runner_lock
db = Database(sys.argv[1])
lock = runner_lock(db.engine)
assert lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_the_runner_lock_holds_across_processes_and_ends_with_its_holder(settings: Settings) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, settings.database_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    db = Database(settings.database_url)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        runner = StandIn()
        host = _host(db, runner)
        host.start()
        assert not host.hosting
        assert holder.stdin is not None
        holder.stdin.close()  # the holder exits without releasing: its end releases the lock
        assert holder.wait(WAIT) == 0
        _wait_until(lambda: host.hosting, "the lock of a process that ended is taken over")
        host.stop()
    finally:
        holder.kill()
        holder.wait()
        db.dispose()


_COUNT = """
import sys
from pathlib import Path
from animatica.db import Database
from animatica.service.metrics import Metrics
metrics = Metrics(Database(sys.argv[1]), Path(sys.argv[2]))
metrics.requests.labels("GET", "/healthz", "200").inc()
metrics.job_finished("landmarks", "succeeded", 3.0)
"""


def test_metrics_of_several_processes_add_up(settings: Settings, db: Database, tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from animatica.service.metrics import shared_registry

    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    for _process in range(2):
        subprocess.run(
            [sys.executable, "-c", _COUNT, settings.database_url, str(folder)], env=env, check=True
        )
    text = generate_latest(shared_registry(db, folder)).decode()
    assert 'animatica_http_requests_total{method="GET",route="/healthz",status="200"} 2.0' in text
    assert 'animatica_job_seconds_count{engine="landmarks",status="succeeded"} 2.0' in text


def test_metrics_shared_with_other_processes_need_the_mode_chosen_at_start(
    db: Database, tmp_path: Path
) -> None:
    from animatica.service.metrics import Metrics

    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        pytest.skip("this test process itself runs in prometheus_client's multiprocess mode")
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):
        Metrics(db, tmp_path)


# --- several web processes and rate limits ------------------------------------------------------


def test_several_web_processes_need_shared_rate_limit_counts(tmp_path: Path) -> None:
    from animatica.service.serving import refuse_unshared_limits
    from animatica.service.startup import UnsafeSettings

    limits_off = {name: "" for name in Settings.model_fields if name.startswith("rate_limit_")}
    plain = Settings(home=tmp_path)
    with pytest.raises(UnsafeSettings, match="ANIMATICA_REDIS_URL") as refused:
        refuse_unshared_limits(plain, 2)
    assert "ANIMATICA_RATE_LIMIT_LOGIN" in str(refused.value) and "2 times" in str(refused.value)
    refuse_unshared_limits(plain, 1)
    refuse_unshared_limits(plain.model_copy(update={"redis_url": "redis://127.0.0.1:6379/0"}), 2)
    refuse_unshared_limits(plain.model_copy(update={"broker_url": "redis://127.0.0.1:6379/1"}), 2)
    refuse_unshared_limits(plain.model_copy(update=limits_off), 2)
    one_on = {**limits_off, "rate_limit_signup": "20/hour"}
    with pytest.raises(UnsafeSettings, match="ANIMATICA_RATE_LIMIT_SIGNUP"):
        refuse_unshared_limits(plain.model_copy(update=one_on), 3)


def test_serve_refuses_several_web_processes_counting_limits_apart(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANIMATICA_")}
    env["ANIMATICA_HOME"] = str(tmp_path / "home")
    command = [sys.executable, "-m", "animatica.cli", "serve", "--port", str(free_port()), "--workers", "2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("animatica: error: --workers 2 without Redis"), done.stderr


# --- the real commands --------------------------------------------------------------------------


def _env(home: Path, **extra: str) -> dict[str, str]:
    return server_env(
        home,
        ANIMATICA_UPLOAD_CHECK_PROCESSES="0",
        # No poll within any test: a queued job starts only if the doorbell wakes the runner.
        ANIMATICA_JOB_POLL_SECONDS="3600",
        **{**LIMITS_OFF, **extra},
    )


@pytest.fixture
def demo_files(tmp_path: Path) -> dict[str, Any]:
    """The demo face and a 1 s driving clip: the jobs are animated to the end, whatever their length."""
    from animatica.demo import write_demo_driving, write_demo_inputs

    (tmp_path / "inputs").mkdir()
    write_demo_driving(tmp_path / "inputs" / "driving.mp4", seconds=1)  # kept by write_demo_inputs
    source, driving = write_demo_inputs(tmp_path / "inputs")
    return {
        "source_image": ("face.png", source.read_bytes(), "image/png"),
        "driving_video": ("talk.mp4", driving.read_bytes(), "video/mp4"),
    }


@pytest.fixture
def commands() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for command in started:
        command.kill()


@pytest.mark.slow
def test_serve_with_two_web_processes_and_a_runner_process(
    tmp_path: Path, demo_files: dict[str, Any], commands: list[Server]
) -> None:
    token = secrets.token_urlsafe(24)
    env = _env(tmp_path / "home", ANIMATICA_METRICS_TOKEN=token)
    server = Server(env, tmp_path / "serve.log", "--workers", "2")
    commands.append(server)

    _wait_until(lambda: len(server.web_processes()) == 2, "both web processes accept connections")
    web = server.web_processes()
    for answering in web:  # every web process answers alone while the other is frozen
        frozen = [pid for pid in web if pid != answering]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            assert httpx.get(f"{server.base}/healthz", timeout=WAIT).status_code == 200
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)

    api = httpx.Client(base_url=server.base, timeout=WAIT)
    headers = signed_in(api)
    submitted = api.post("/api/v1/animations", headers=headers, files=demo_files)
    assert submitted.status_code == 202, submitted.text
    animator, runner = server.animator()
    assert runner in server.children() and runner not in server.web_processes()
    done = wait_status(api, headers, submitted.json()["id"])
    assert done["status"] == "succeeded", (done, server.tail())
    assert server.output().count("job runner started") == 1

    # A cancel received by a web process stops the job running in the runner process. The
    # animation process is frozen first, so the job can neither finish nor fail by itself.
    os.kill(animator, signal.SIGSTOP)
    frozen = api.post("/api/v1/animations", headers=headers, files=demo_files).json()["id"]
    _wait_until(
        lambda: api.get(f"/api/v1/animations/{frozen}", headers=headers).json()["status"] == "running",
        "the runner takes the job",
    )
    assert api.post(f"/api/v1/animations/{frozen}/cancel", headers=headers).status_code == 200
    assert wait_status(api, headers, frozen)["status"] == "canceled"

    # A runner process that dies is replaced, and jobs go on in the new one.
    os.kill(runner, signal.SIGKILL)
    _wait_until(lambda: server.output().count("job runner started") == 2, "a new runner process starts", 180)
    again = api.post("/api/v1/animations", headers=headers, files=demo_files).json()["id"]
    assert wait_status(api, headers, again)["status"] == "succeeded"
    _animator_now, replacement = server.animator()
    assert replacement != runner and replacement in server.children()
    assert replacement not in server.web_processes()

    scraped = api.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert scraped.status_code == 200
    assert 'animatica_job_seconds_count{engine="landmarks",status="succeeded"} 2.0' in scraped.text
    healthz = [
        float(line.rsplit(" ", 1)[1])
        for line in scraped.text.splitlines()
        if line.startswith('animatica_http_requests_total{method="GET",route="/healthz",status="200"}')
    ]
    assert healthz and healthz[0] >= 3  # the readiness probe's and one per web process

    processes = server.processes()
    assert server.stop() == 0, server.tail()
    left = wait_gone(processes)
    assert not left, f"processes left behind: {left}\n{server.tail()}"


@pytest.mark.slow
def test_the_factory_under_several_uvicorn_workers_runs_one_runner(
    tmp_path: Path, demo_files: dict[str, Any], commands: list[Server]
) -> None:
    def uvicorn(port: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--factory", "animatica.service.app:create_app",
            "--workers", "2", "--port", str(port), "--no-access-log",
        ]  # fmt: skip

    env = _env(tmp_path / "home", ANIMATICA_LOG_LEVEL="INFO")
    server = Server(env, tmp_path / "uvicorn.log", command=uvicorn)
    commands.append(server)
    _wait_until(
        lambda: "job runner started" in server.output() and "stands by" in server.output(),
        "one worker hosts the runner and the other stands by",
        timeout=180,
    )

    api = httpx.Client(base_url=server.base, timeout=WAIT)
    headers = signed_in(api)
    job_ids = []
    for _job in range(2):  # whichever worker takes a submission, the runner is woken
        submitted = api.post("/api/v1/animations", headers=headers, files=demo_files)
        assert submitted.status_code == 202, submitted.text
        job_ids.append(submitted.json()["id"])
    for job_id in job_ids:
        done = wait_status(api, headers, job_id)
        assert done["status"] == "succeeded", (done, server.tail())
    assert server.output().count("job runner started") == 1
    assert server.output().count("stands by") == 1

    processes = server.processes()
    server.stop()
    left = wait_gone(processes)
    assert not left, f"processes left behind: {left}\n{server.tail()}"


@pytest.mark.slow
def test_a_web_process_that_cannot_start_stops_the_server_and_leaves_nothing(tmp_path: Path) -> None:
    env = _env(tmp_path / "home", ANIMATICA_DATABASE_URL=f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    args = serve_command(free_port(), "--workers", "2")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        code = process.wait(300)
        output = log.read_text(errors="replace")
        assert code == 2, output[-6000:]
        assert "animatica: error: a web process could not start" in output
        assert "the web process could not start" in output  # and why, in that process's log
        left = wait_gone(in_session(process.pid))
        assert not left, f"processes left behind: {left}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
