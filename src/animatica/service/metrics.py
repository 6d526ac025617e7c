"""Prometheus metrics, in a registry per app so that several apps (tests) never collide."""

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
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


class Metrics:
    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "animatica_http_requests",
            "HTTP requests by route and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "animatica_http_request_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.job_seconds = Histogram(
            "animatica_job_seconds",
            "Wall time of finished jobs by engine and final status.",
            ["engine", "status"],
            registry=self.registry,
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
        )
        self.registry.register(_JobGauge(db))

    def job_finished(self, engine: str, status: str, seconds: float) -> None:
        self.job_seconds.labels(engine, status).observe(seconds)
