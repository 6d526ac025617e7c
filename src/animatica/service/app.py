"""The FastAPI application: wiring only; behaviour lives in the modules it includes."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from animatica.errors import AnimaticaError
from animatica.jobs.child import ProcessExecutor
from animatica.jobs.execute import Executor, PipelineExecutor
from animatica.service import (
    pages,
    routes_auth,
    routes_engine,
    routes_jobs,
    routes_local_pay,
    routes_ops,
    routes_v0,
    upload_checks,
)
from animatica.service.context import ServiceContext, build_context
from animatica.service.errors import status_for
from animatica.service.limits import BodyLimitMiddleware
from animatica.service.logs import configure_logging
from animatica.service.observe import ObserveMiddleware
from animatica.settings import Settings, get_settings

log = logging.getLogger("animatica.service")
UPLOAD_PATHS = ("/api/v1/animations", "/api/v0/animation/video", "/api/fomm/video", *pages.UPLOAD_PATHS)
MULTIPART_OVERHEAD = 64 * 1024


def create_app(settings: Settings | None = None, executor: Executor | None = None) -> FastAPI:
    """Build the app for these settings; `executor` replaces the pipeline (tests, integrations)."""
    settings = settings or get_settings()
    configure_logging(settings.log_format, settings.log_level)
    owned = None if executor is not None else _default_executor(settings)
    ctx = build_context(settings, executor or owned)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.worker_enabled:
            ctx.runner.start()
        upload_checks.warm_up(settings)
        try:
            yield
        finally:
            ctx.runner.stop()
            if isinstance(owned, ProcessExecutor):
                owned.close()
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
        routes_local_pay.router,
        routes_engine.router,
        routes_ops.router,
    ):
        app.include_router(router)
    pages.install(app)
    _install_handlers(app, settings)
    _install_middleware(app, ctx)
    return app


def _default_executor(settings: Settings) -> Executor:
    """Child processes unless told otherwise: animating in a server thread starves requests (issue 5)."""
    if settings.worker_mode == "thread":
        return PipelineExecutor(settings)
    return ProcessExecutor(settings)


def _install_handlers(app: FastAPI, settings: Settings) -> None:
    @app.exception_handler(AnimaticaError)
    async def animatica_error(_request: Request, error: AnimaticaError) -> JSONResponse:
        code = status_for(error)
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
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

    app.add_middleware(ObserveMiddleware, metrics=ctx.metrics)

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


def serve(host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None) -> None:
    """Run the service with uvicorn until interrupted (``animatica serve``)."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
