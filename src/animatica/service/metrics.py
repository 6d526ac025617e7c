"""Prometheus metrics, in a registry per app so that several apps (tests) never collide.

A server of several processes (web processes and the runner's) adds up their counts in one
folder, prometheus_client's multiprocess mode: each process writes its own files there and
``/metrics`` of any of them reads them all, so a scrape sees the whole server whichever process
answers it, and a restarted process's counts are kept. That mode is chosen when prometheus_client
is imported, from ``PROMETHEUS_MULTIPROC_DIR``, which must therefore be set before the process
starts (``animatica serve`` sets it for the processes it starts).
"""

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from animatica.db.models import Job
from animatica.db.session import Database


class _JobGauge(Collector):
    """Jobs per status, read from the database at scrape time (the only source of truth)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self):  # type: ignore[no-untyped-def]
        gauge = GaugeMetricFamily("animatica_jobs", "Jobs by status.", labels=["status"])
        with self.db.read() as session:
            for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status)).all():
                gauge.add_metric([status], count)
        yield gauge


def shared_registry(db: Database, shared_dir: Path) -> CollectorRegistry:
    """What a scrape shows of a server of several processes: the sums of their files, and the jobs."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(shared_dir))
    registry.register(_JobGauge(db))
    return registry


class Metrics:
    """``registry`` is what ``/metrics`` shows; with ``shared_dir``, the sums of every process."""

    def __init__(self, db: Database, shared_dir: Path | None = None) -> None:
        if shared_dir is None:
            self.registry = own = CollectorRegistry()
            self.registry.register(_JobGauge(db))
        else:
            if values.ValueClass is values.MutexValue:
                raise RuntimeError(
                    "metrics shared between processes need PROMETHEUS_MULTIPROC_DIR set before start"
                )
            self.registry = shared_registry(db, shared_dir)
            own = CollectorRegistry()  # written to the folder, read back from it with the others
        self.requests = Counter(
            "animatica_http_requests",
            "HTTP requests by route and status code.",
            ["method", "route", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "animatica_http_request_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            registry=own,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.job_seconds = Histogram(
            "animatica_job_seconds",
            "Wall time of finished jobs by engine and final status.",
            ["engine", "status"],
            registry=own,
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
        )

    def job_finished(self, engine: str, status: str, seconds: float) -> None:
        self.job_seconds.labels(engine, status).observe(seconds)
