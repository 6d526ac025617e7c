"""Everything a request handler needs, built once per app from the settings."""

from dataclasses import dataclass, field
from pathlib import Path

from animatica.db.migrate import upgrade_to_head
from animatica.db.session import Database
from animatica.jobs.lifecycle import Executor, ThreadExecutor
from animatica.jobs.runner import JobRunner
from animatica.jobs.runner_process import RunnerHost, doorbell_address, runner_lock
from animatica.service.auth import TokenService
from animatica.service.metrics import Metrics
from animatica.service.payments import PaymentProvider, make_provider
from animatica.service.plans import PLANS
from animatica.settings import Settings
from animatica.storage import Storage, open_storage


@dataclass
class ServiceContext:
    settings: Settings
    db: Database
    storage: Storage
    tokens: TokenService
    payments: PaymentProvider
    metrics: Metrics
    runner: RunnerHost
    extra: dict[str, object] = field(default_factory=dict)


def build_context(
    settings: Settings,
    executor: Executor | None = None,
    *,
    may_host_runner: bool = True,
    metrics_dir: Path | None = None,
) -> ServiceContext:
    """Open (and migrate) the database and the store; the runner is started by the app's lifespan.

    ``may_host_runner=False``: the jobs run in another process, which this one only wakes.
    ``metrics_dir``: the folder where all processes of one server add up their metrics.
    """
    db = Database(settings.database_url)
    upgrade_to_head(db.engine)
    storage = open_storage(settings.storage_url)
    metrics = Metrics(db, metrics_dir)
    runner = JobRunner(
        db,
        storage,
        settings,
        executor or ThreadExecutor(settings),
        {plan.id: plan.parallel_jobs for plan in PLANS.values()},
        on_finish=metrics.job_finished,
    )
    return ServiceContext(
        settings=settings,
        db=db,
        storage=storage,
        tokens=TokenService(settings),
        payments=make_provider(settings),
        metrics=metrics,
        runner=RunnerHost(
            runner,
            runner_lock(db.engine),
            doorbell_address(db.engine),
            may_host=may_host_runner,
            retry_seconds=settings.job_poll_seconds,
        ),
    )
