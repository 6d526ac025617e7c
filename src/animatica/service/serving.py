"""``animatica serve``: the web processes and the job runner's process, started and stopped as one.

    animatica serve           supervises; answers no request itself
    ├── job runner process    the JobRunner, with its animation processes below it
    └── web process × N       uvicorn workers taking connections from one shared socket

The runner has a process of its own whatever N is, so a web process only answers requests (and
wakes the runner when it queues a job, see ``jobs.runner_process``). Each process leaves as soon
as the supervisor is gone, so killing the supervisor orphans nothing; a web process that dies is
replaced by uvicorn, a runner process that dies by the supervisor.

A stop (SIGTERM, or SIGINT): the web processes stop accepting, give open requests up to
``shutdown_grace_seconds`` and exit; then the runner process gets as long for its running jobs,
hands the others back to the queue and exits. SIGHUP replaces the web processes one by one.

What N processes mean for state kept per process:
- rate limits must be counted in one place: with N > 1 they need Redis (``ANIMATICA_REDIS_URL``,
  or a Redis broker), else the server refuses to start, since each process would allow the
  whole rate again;
- the caps on open synchronous requests and on concurrent password hashes bound what one
  process holds (connections, memory), so they stay per process: N times them for the server;
- metrics are added up over all processes (``service.metrics``), so any of them answers a scrape
  for the whole server;
- each web process has its own upload-check processes (``ANIMATICA_UPLOAD_CHECK_PROCESSES``).
"""

import inspect
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from animatica.errors import AnimaticaError
from animatica.processes import leave_with_parent
from animatica.service import ratelimit, startup
from animatica.service.logs import configure_logging
from animatica.service.payments import choose_provider
from animatica.settings import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("animatica.service")

SERVED_ENV = "ANIMATICA_SERVED"  # how the supervisor tells its web processes what they serve
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
WEB_APP = "animatica.service.serving:web_app"
RUNNER_STOP_SECONDS = 60.0  # beyond the grace: how long the runner may take to hand its jobs back
RUNNER_RESTART_SECONDS = 5.0  # pause before replacing a runner process that died


class ServeFailed(AnimaticaError):
    """The server could not start; its log says why."""


@dataclass(frozen=True)
class Served:
    """What a web process needs from its supervisor; the settings travel whole, as JSON."""

    bind_host: str
    supervisor: int
    settings: str

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, value: str) -> "Served":
        return cls(**json.loads(value))


def web_app() -> "FastAPI":
    """The app of one web process started by ``serve`` (uvicorn calls it in the new process)."""
    from uvicorn.config import STARTUP_FAILURE

    from animatica.service.app import create_app

    served = Served.from_env(os.environ[SERVED_ENV])
    leave_with_parent(served.supervisor)
    try:
        settings = Settings.model_validate_json(served.settings)
        return create_app(settings, bind_host=served.bind_host, runner_elsewhere=True)
    except Exception:
        # Exiting with uvicorn's start-up failure code stops the server instead of restarting
        # this process forever.
        log.exception("the web process could not start")
        sys.exit(STARTUP_FAILURE)


def refuse_unshared_limits(settings: Settings, processes: int) -> None:
    """Several processes counting rate limits each on their own would each allow the whole rate."""
    if processes <= 1 or ratelimit.shared_store_url(settings):
        return
    active = ratelimit.active_limit_settings(settings)
    if active:
        raise startup.UnsafeSettings(
            f"--workers {processes} without Redis would count rate limits in each process, allowing "
            f"{processes} times each rate ({', '.join(active)}); set ANIMATICA_REDIS_URL so that all "
            "processes share the counts, or serve with one web process."
        )


def run_runner(settings: Settings, supervisor: int, metrics_dir: str | None) -> None:
    """The job runner's process: hosts the runner until SIGTERM or SIGINT, then hands jobs back."""
    from animatica.jobs.child import ProcessExecutor
    from animatica.service.app import default_executor
    from animatica.service.context import build_context

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    leave_with_parent(supervisor)
    configure_logging(settings.log_format, settings.log_level)
    executor = default_executor(settings)
    ctx = build_context(settings, executor, metrics_dir=Path(metrics_dir) if metrics_dir else None)
    try:
        if not stop.is_set():  # a stop asked for while starting up: nothing to take on
            ctx.runner.start()
        while not stop.wait(1.0):
            pass
        release = executor.close if isinstance(executor, ProcessExecutor) else None
        ctx.runner.stop(settings.shutdown_grace_seconds, release=release)
        if release is not None:
            release()
    finally:
        ctx.db.dispose()


class RunnerProcess:
    """The supervisor's handle on the runner process: started once, replaced if it dies, stopped last.

    Only the watching thread reaps the process, and signals are sent under the same lock after
    checking it has not ended, so a signal never reaches a process that merely reused its pid.
    """

    def __init__(self, settings: Settings, metrics_dir: str | None) -> None:
        self.settings = settings
        self.metrics_dir = metrics_dir
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        with self._lock:
            self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="animatica-runner-watch", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """SIGTERM, then wait for the grace and the hand-back; a runner stuck past that is killed
        (its animation processes leave with it, and the next start recovers its jobs)."""
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is None:
            return
        self._signal(process, signal.SIGTERM)
        if not _ended(process, self.settings.shutdown_grace_seconds + RUNNER_STOP_SECONDS):
            log.error("the job runner process did not stop; killing it", extra={"pid": process.pid})
            self._signal(process, signal.SIGKILL)
        if self._watcher is not None:
            self._watcher.join()

    def _signal(self, process: Any, signum: int) -> None:
        with self._lock:
            if not _ended(process, 0):
                os.kill(process.pid, signum)

    def _spawn(self) -> None:
        self._process = self._context.Process(
            target=run_runner,
            args=(self.settings, os.getpid(), self.metrics_dir),
            name="animatica-runner",
        )
        self._process.start()
        log.info("job runner process started", extra={"pid": self._process.pid})

    def _watch(self) -> None:
        while True:
            with self._lock:
                process = self._process
            _ended(process, None)
            with self._lock:
                process.join()  # reaps it
            if self._stopping.is_set():
                return
            if process.exitcode == 0:
                # Asked to stop by a signal of its own (systemd signals every process of a service
                # at once); the supervisor is stopping too, or an operator meant it.
                log.info("the job runner process stopped", extra={"pid": process.pid})
                return
            if self._stopping.wait(RUNNER_RESTART_SECONDS):
                return
            log.error(
                "the job runner process exited; starting another",
                extra={"pid": process.pid, "exitcode": process.exitcode},
            )
            with self._lock:
                if self._stopping.is_set():
                    return
                self._spawn()


def _ended(process: Any, timeout: float | None) -> bool:
    """Whether the process has exited (waiting up to ``timeout``), without reaping it."""
    return bool(multiprocessing.connection.wait([process.sentinel], timeout))


def serve(host: str, port: int, settings: Settings | None = None, workers: int = 1) -> None:
    """Run ``workers`` web processes and the runner process until SIGTERM or SIGINT.

    With ``ANIMATICA_METRICS_BIND`` the metrics of all processes are also served, without a token,
    on that separate address, which is meant to be reachable only by the scraper.
    """
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from animatica.service.app import server_options

    settings = settings or get_settings()
    startup.check_settings(settings)
    refuse_unshared_limits(settings, workers)
    configure_logging(settings.log_format, settings.log_level)
    settings = settings.model_copy(update={"payment_provider": choose_provider(settings, host)})

    metrics_dir = tempfile.mkdtemp(prefix="animatica-metrics-")
    saved = {name: os.environ.get(name) for name in (METRICS_ENV, SERVED_ENV)}
    # Read by the processes started below (environment and settings are theirs from the start).
    os.environ[METRICS_ENV] = metrics_dir
    os.environ[SERVED_ENV] = Served(host, os.getpid(), settings.model_dump_json()).to_env()
    runner = RunnerProcess(settings, metrics_dir) if settings.worker_enabled else None
    listener = None
    try:
        listener = _serve_metrics(settings, Path(metrics_dir))
        config = uvicorn.Config(
            WEB_APP, factory=True, workers=workers, **server_options(host, port, settings)
        )
        sock = config.bind_socket()
        try:
            supervisor = _supervisor(Multiprocess, config, sock)  # takes SIGTERM/SIGINT from here on
            if runner is not None:
                runner.start()
            supervisor.run()
        finally:
            sock.close()
            if runner is not None:
                runner.stop()
        if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
            raise ServeFailed("a web process could not start; its log above says why.")
    finally:
        if listener is not None:
            listener.shutdown()
            listener.server_close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _supervisor(multiprocess: Any, config: Any, sock: Any) -> Any:
    """uvicorn's worker supervisor (older uvicorn versions take the worker's target explicitly)."""
    if "target" in inspect.signature(multiprocess).parameters:
        import uvicorn

        return multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock])
    return multiprocess(config, sockets=[sock])


def _serve_metrics(settings: Settings, metrics_dir: Path) -> Any:
    if not settings.metrics_bind:
        return None
    from prometheus_client import start_http_server

    from animatica.db.session import Database
    from animatica.service.metrics import shared_registry

    metrics_host, metrics_port = startup.parse_bind(settings.metrics_bind)
    registry = shared_registry(Database(settings.database_url), metrics_dir)
    try:
        listener, _thread = start_http_server(metrics_port, addr=metrics_host, registry=registry)
    except OSError as exc:
        raise startup.UnsafeSettings(
            f"ANIMATICA_METRICS_BIND {settings.metrics_bind} cannot be listened on: {exc.strerror}."
        ) from exc
    log.info("metrics served on %s", settings.metrics_bind)
    return listener
