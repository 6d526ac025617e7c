"""The FastAPI application: wiring only; behaviour lives in the modules it includes."""

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from animatica.errors import AnimaticaError
from animatica.jobs.child import ProcessExecutor
from animatica.jobs.lifecycle import Executor, ThreadExecutor
from animatica.service import pages, ratelimit, startup
from animatica.service.auth import bound_password_hashing
from animatica.service.context import ServiceContext, build_context
from animatica.service.errors import status_for
from animatica.service.hsts import StrictTransportMiddleware
from animatica.service.limits import BodyLimitMiddleware
from animatica.service.logs import configure_logging
from animatica.service.observe import ObserveMiddleware
from animatica.service.payments import choose_provider
from animatica.service.routes import auth as routes_auth
from animatica.service.routes import edits as routes_edits
from animatica.service.routes import engine as routes_engine
from animatica.service.routes import images as routes_images
from animatica.service.routes import jobs as routes_jobs
from animatica.service.routes import live as routes_live
from animatica.service.routes import local_pay as routes_local_pay
from animatica.service.routes import ops as routes_ops
from animatica.service.routes import swaps as routes_swaps
from animatica.service.routes import v0 as routes_v0
from animatica.service.uploads import checks as upload_checks
from animatica.settings import Settings, get_settings

log = logging.getLogger("animatica.service")
UPLOAD_PATHS = (
    "/api/v1/animations",
    "/api/v1/edits",
    "/api/v1/swaps",
    "/api/v1/images",
    "/api/v0/animation/video",
    "/api/fomm/video",
    "/api/v1/live/sessions",
    "/live/sessions",
    *pages.UPLOAD_PATHS,
)
MULTIPART_OVERHEAD = 64 * 1024


def create_app(
    settings: Settings | None = None,
    executor: Executor | None = None,
    *,
    bind_host: str | None = None,
    runner_elsewhere: bool = False,
) -> FastAPI:
    """Build the app for these settings; `executor` replaces the pipeline (tests, integrations).

    `bind_host` is the address the server listens on, when known: on a loopback address the
    'auto' payment provider may be the simulated one, anywhere else (or unknown) it may not.
    Unsafe settings raise ``UnsafeSettings`` before anything is opened or started.

    Also the factory of multi-process servers (``uvicorn --factory --workers N
    animatica.service.app:create_app``, or gunicorn with uvicorn workers): with
    ``ANIMATICA_WORKER_ENABLED`` on, exactly one process at a time runs the database's jobs, the
    others wake it (``jobs.runner_process``). `runner_elsewhere` is a web process of ``animatica
    serve``, whose runner has its own process. With ``PROMETHEUS_MULTIPROC_DIR`` set before the
    processes start, ``/metrics`` shows the sums of all of them.
    """
    settings = settings or get_settings()
    configure_logging(settings.log_format, settings.log_level)
    startup.check_settings(settings)
    settings = settings.model_copy(update={"payment_provider": choose_provider(settings, bind_host)})
    owned = None if executor is not None else default_executor(settings)
    shared_metrics = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    ctx = build_context(
        settings,
        executor or owned,
        may_host_runner=not runner_elsewhere,
        metrics_dir=Path(shared_metrics) if shared_metrics else None,
    )
    bound_password_hashing(settings.password_hash_concurrency, settings.password_hash_queue)
    startup.log_payment_mode(settings, ctx.payments.name, bind_host)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.worker_enabled:
            ctx.runner.start()
        upload_checks.warm_up(settings)
        try:
            yield
        finally:
            # On SIGTERM uvicorn stops accepting requests, waits for open ones, then comes here: the
            # running job gets the grace to finish, else goes back to the queue, and the animation
            # children are stopped and waited for (upload check processes leave with the process).
            release = owned.close if isinstance(owned, ProcessExecutor) else None
            ctx.runner.stop(settings.shutdown_grace_seconds, release=release)
            if release is not None:
                release()
            ctx.db.dispose()

    app = FastAPI(
        title="Animatica API",
        description="Animate a still image with the motion of a driving video.",
        version="0.1.0",
        lifespan=lifespan,
        debug=settings.debug,
    )
    app.state.ctx = ctx
    for router in (
        routes_auth.router,
        routes_v0.router,
        routes_jobs.router,
        routes_edits.router,
        routes_swaps.router,
        routes_images.router,
        routes_local_pay.router,
        routes_engine.router,
        routes_ops.router,
        routes_live.router,
        routes_live.page_router,
    ):
        app.include_router(router)
    pages.install(app)
    _install_handlers(app, settings)
    _install_middleware(app, ctx)
    return app


def default_executor(settings: Settings) -> Executor:
    """Child processes unless told otherwise: animating in a server thread starves requests."""
    if settings.worker_mode == "thread":
        return ThreadExecutor(settings)
    return ProcessExecutor(settings)


def _install_handlers(app: FastAPI, settings: Settings) -> None:
    @app.exception_handler(AnimaticaError)
    async def animatica_error(_request: Request, error: AnimaticaError) -> JSONResponse:
        code = status_for(error)
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
        if isinstance(error, ratelimit.RetryLater):
            headers = error.headers
        return JSONResponse({"detail": str(error)}, status_code=code, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=error, extra={"path": request.url.path})
        detail = f"{type(error).__name__}: {error}" if settings.debug else "Internal server error."
        return JSONResponse({"detail": detail}, status_code=500)


def _install_middleware(app: FastAPI, ctx: ServiceContext) -> None:
    settings = ctx.settings
    upload_limit = 2 * settings.max_upload_bytes + MULTIPART_OVERHEAD

    def limit_for(path: str) -> int:
        return upload_limit if path.startswith(UPLOAD_PATHS) else settings.max_json_bytes

    # Innermost: its 429s are counted by the metrics and carry the CORS headers.
    ratelimit.install(app, ctx)
    app.add_middleware(ObserveMiddleware, metrics=ctx.metrics)
    app.add_middleware(StrictTransportMiddleware, max_age=settings.hsts_seconds)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    # Added last, so it runs first: oversized bodies never reach the parsers.
    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)


def server_options(host: str, port: int, settings: Settings) -> dict[str, Any]:
    """uvicorn's options: X-Forwarded-For/-Proto are believed only from the configured proxies,
    so the scheme (and with it Secure cookies and HSTS) follows what the proxy was asked for."""
    return {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        # Open requests (a synchronous animation may take minutes) may delay a stop this long.
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }


def serve(
    host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None, workers: int = 1
) -> None:
    """Run the service until interrupted (``animatica serve``): ``workers`` web processes and the
    job runner's process (see ``service.serving``)."""
    from animatica.service.serving import serve as serve_processes

    serve_processes(host, port, settings, workers)
