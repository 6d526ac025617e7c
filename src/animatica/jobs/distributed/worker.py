"""A Celery worker: the context each of its processes works in, and the ``animatica worker`` command.

Every pool process opens its own database and store lazily (a forked process must not share its
parent's connections), sets torch's threads once when it starts (the cores shared between the
``concurrency`` processes), and runs the reconcile loop, so that whatever the broker missed is
sent again even when no task arrives. Extra job kinds (the ``job_kinds`` setting) are imported
before the pool forks, so every process knows them.
"""

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from animatica.db.migrate import upgrade_to_head
from animatica.db.session import Database
from animatica.jobs import kinds
from animatica.jobs.distributed.app import build_app
from animatica.settings import Settings, get_settings
from animatica.storage import Storage, open_storage

log = logging.getLogger("animatica.jobs")

WORKER_ID = "celery"  # owner of every distributed job in the jobs table


@dataclass
class Context:
    settings: Settings
    db: Database
    storage: Storage
    pid: int


_settings_override: Settings | None = None
_context: Context | None = None
_context_lock = threading.Lock()


def context() -> Context:
    """Database and store of this process, opened lazily: a forked pool process opens its own."""
    global _context
    with _context_lock:
        if _context is None or _context.pid != os.getpid():
            settings = _settings_override or get_settings()
            db = Database(settings.database_url)
            _context = Context(settings, db, open_storage(settings.storage_url), os.getpid())
        return _context


def _reconcile_forever(interval: float) -> None:
    from animatica.jobs.distributed.dispatch import reconcile

    while True:
        time.sleep(interval)
        try:
            reconcile(context())
        except Exception:
            log.exception("reconcile failed")


def _process_start(interval: float, threads: int) -> Callable[..., None]:
    """A handler that sets up each pool process right after it is forked: torch's threads, the
    reconcile loop, and the job kinds' warm-up (engines and models loaded before the first task).

    Not in the parent: a thread running there while the pool forks a replacement process (after
    a crash, say) could leave a lock held in the child forever, and torch's thread pool does not
    survive a fork.
    """

    def start(**_: Any) -> None:
        from animatica.device import use_threads

        use_threads(threads)
        threading.Thread(target=_reconcile_forever, args=(interval,), daemon=True).start()
        kinds.warm_all(context().settings)
        log.info("job kinds warmed")

    return start


def run_worker(
    queues: Sequence[str] | None = None,
    concurrency: int = 1,
    loglevel: str = "INFO",
    hostname: str | None = None,
    settings: Settings | None = None,
    pool: str = "prefork",
    reconcile_seconds: float | None = None,
) -> None:
    """Run a Celery worker in this process until it is stopped (the ``animatica worker`` command).

    Each pool process runs one task at a time with ``torch_threads`` threads (default: the cores
    shared evenly between the ``concurrency`` processes).
    """
    from celery.signals import worker_process_init

    from animatica.device import threads_per_job

    global _settings_override
    settings = settings or get_settings()
    _settings_override = settings
    kinds.import_modules(settings.job_kinds)
    app = build_app(settings)
    db = Database(settings.database_url)
    upgrade_to_head(db.engine)  # a worker may start before the app ever ran on this database
    db.dispose()
    threads = threads_per_job(settings.torch_threads, concurrency)
    handler = _process_start(reconcile_seconds or settings.job_heartbeat_seconds, threads)
    worker_process_init.connect(handler, weak=False)
    argv = [
        "worker",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        f"--queues={','.join(queues or [settings.celery_queue])}",
        f"--pool={pool}",
        "--without-gossip",
        "--without-mingle",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)
