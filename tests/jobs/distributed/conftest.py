"""A real cluster for the distributed tests: the local RabbitMQ or Redis, PostgreSQL (SQLite when it
is absent), a shared file store, and Celery workers started as separate processes.

Each cluster gets its own queue and database, removed afterwards. Tests skip, naming the
reason, when a broker does not answer.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from tests.conftest import add_job, load_job, postgres_problem, scratch_postgres

from animatica.db import Database, upgrade_to_head
from animatica.db.models import Job, User
from animatica.jobs import state
from animatica.jobs.distributed import plans
from animatica.jobs.distributed.dispatch import enqueue
from animatica.service.accounts import signup
from animatica.service.plans import get_plan
from animatica.settings import Settings
from animatica.storage import Storage, open_storage

AMQP_URL = os.environ.get("ANIMATICA_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("ANIMATICA_TEST_REDIS", "redis://127.0.0.1:6379/0")
BROKERS = {"rabbitmq": AMQP_URL, "redis": REDIS_URL}


def broker_problem(url: str) -> str | None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        return f"the broker at {url} does not answer ({type(exc).__name__})"
    return None


@dataclass
class Cluster:
    settings: Settings
    db: Database
    storage: Storage
    folder: Path
    env: dict[str, str]
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_worker(self, name: str, concurrency: int = 1) -> None:
        code = (
            "from animatica.jobs.distributed.worker import run_worker; "
            f"run_worker(concurrency={concurrency}, hostname={name + '@test'!r}, loglevel='INFO')"
        )
        log = (self.folder / f"{name}.log").open("ab")
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-c", code],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for name, process in self.workers.items():
            log = self.folder / f"{name}.log"
            while b" ready." not in log.read_bytes():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"worker {name} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)

    def stop(self) -> None:
        for process in self.workers.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.workers.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        self.workers.clear()

    def user(self, name: str, plan: str = "free", credits: int = 5) -> int:
        user_id = signup(self.db, name, "password-long-enough", credits)
        with self.db.transaction() as session:
            session.execute(update(User).where(User.id == user_id).values(plan_id=plan))
        return user_id

    def submit(self, user_id: int, source: Path, driving: Path, engine: str, options: dict[str, Any]) -> str:
        job_id = uuid.uuid4().hex
        source_key, driving_key = f"jobs/{job_id}/source.png", f"jobs/{job_id}/driving.mp4"
        self.storage.put_file(source_key, source)
        self.storage.put_file(driving_key, driving)
        with self.db.read() as session:
            plan_id = session.scalar(select(User.plan_id).where(User.id == user_id))
        priority = get_plan(str(plan_id)).priority
        add_job(
            self.db,
            user_id,
            job_id,
            engine=engine,
            options=options,
            priority=priority,
            source_name=source.name,
            driving_name=driving.name,
        )
        assert enqueue(self.settings, self.db, job_id, priority)
        return job_id

    def job(self, job_id: str) -> Job:
        return load_job(self.db, job_id)

    def wait(self, job_id: str, timeout: float = 120.0) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job.status in state.FINAL:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish: {self.job(job_id).__dict__}\n{self.logs()}")

    def segments(self, job_id: str) -> list[plans.SegmentRow]:
        with self.db.transaction() as session:
            return plans.job_segments(session, job_id)

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{(self.folder / f'{name}.log').read_text()[-4000:]}" for name in self.workers
        )


def _drop_queue(url: str, queue: str) -> None:
    if url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{queue}*"):
            client.delete(key)
        client.close()
        return
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.default_channel.queue_delete(queue)
    except Exception:
        pass  # the broker may be down after a failed restart test; nothing to clean then


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Build a cluster: ``make_cluster("rabbitmq", workers=2, **settings)``."""
    made: list[tuple[Cluster, str]] = []
    databases = contextlib.ExitStack()

    def build(broker: str, workers: int = 2, **overrides: Any) -> Cluster:
        url = BROKERS[broker]
        problem = broker_problem(url)
        if problem:
            pytest.skip(problem)
        folder = tmp_path / f"cluster{len(made)}"
        folder.mkdir()
        if postgres_problem() is None:
            database_url = databases.enter_context(scratch_postgres("animatica_dist"))
        else:
            database_url = f"sqlite:///{folder / 'animatica.db'}"
        values: dict[str, Any] = {
            "home": folder / "home",
            "database_url": database_url,
            "storage_url": (folder / "files").as_uri(),
            "broker_url": url,
            "celery_queue": f"animatica-test-{uuid.uuid4().hex[:8]}",
            "segment_seconds": 1.0,
            "torch_threads": 1,
            "job_heartbeat_seconds": 1.0,
            "log_format": "text",
        }
        values.update(overrides)
        settings = Settings(**values)
        db = Database(settings.database_url)
        upgrade_to_head(db.engine)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMATICA_")}
        env.update({f"ANIMATICA_{k.upper()}": str(v) for k, v in values.items()})
        cluster = Cluster(settings, db, open_storage(settings.storage_url), folder, env)
        made.append((cluster, url))
        for index in range(workers):
            cluster.start_worker(f"w{index + 1}")
        return cluster

    yield build
    for cluster, url in made:
        cluster.stop()
        cluster.db.dispose()
        _drop_queue(url, cluster.settings.celery_queue)
    databases.close()
