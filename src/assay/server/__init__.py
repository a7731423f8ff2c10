"""The ASGI app: OTLP receiver, query API and health endpoints in one process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from assay import __version__
from assay.batch import skip_pandas_probe
from assay.ingest import Decoder, Ingestor
from assay.keys import InvalidNameError, KeyRing
from assay.pricing import PriceTable, load_prices
from assay.query import QueryError
from assay.server.auth import Authenticator, AuthError
from assay.server.pages.session import Sessions
from assay.settings import Settings
from assay.store import Store, open_store

log = logging.getLogger("assay.server")


def create_app(
    settings: Settings,
    store: Store | None = None,
    prices: PriceTable | None = None,
    close_store: bool = False,
) -> FastAPI:
    """Build the app. Without ``store`` the app opens ``settings.db`` at startup and closes
    it at shutdown; a given store is closed at shutdown only with ``close_store``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        skip_pandas_probe()
        owned = store is None or close_store
        st = (
            store
            if store is not None
            else open_store(
                settings.db,
                memory_limit=settings.duckdb_memory_limit,
                threads=settings.duckdb_threads,
                checkpoint_threshold=settings.duckdb_checkpoint_threshold,
                row_group_size=settings.duckdb_row_group_size,
            )
        )
        table = prices if prices is not None else load_prices(settings.prices)
        st.create_project(settings.default_project)
        repriced = await asyncio.to_thread(st.reprice, table)
        if repriced:
            log.info("priced %d stored spans whose model gained a price", repriced)
        keys = KeyRing(st)
        ingestor = Ingestor(
            st,
            settings.max_pending_spans,
            settings.writer_batch_spans,
            settings.retry_after_seconds,
        )
        ingestor.start()
        decoder = Decoder(table, settings.prices, settings.decode_workers)
        app.state.decoder = decoder
        app.state.settings = settings
        app.state.store = st
        app.state.prices = table
        app.state.keys = keys
        app.state.auth = Authenticator(settings, keys)
        app.state.sessions = Sessions(settings, keys)
        app.state.ingestor = ingestor
        app.state.decode_slots = asyncio.Semaphore(4)
        from assay.monitors.scheduler import Scheduler

        app.state.monitors = monitors = Scheduler.from_settings(st, settings)
        if settings.monitors:
            monitors.start()
        from assay.online_worker import OnlineWorker

        app.state.online = online = OnlineWorker.from_settings(st, settings)
        if settings.online:
            online.start()
        from assay.retention import RetentionTask

        retention = RetentionTask(st, settings.retention_interval_seconds)
        retention.start()
        try:
            yield
        finally:
            await retention.stop()
            await monitors.stop()
            await online.stop()
            await decoder.aclose()
            await asyncio.to_thread(ingestor.stop)
            if owned:
                st.close()

    app = FastAPI(
        title="assay",
        version=__version__,
        summary="OTLP trace collector and query API for LLM applications",
        lifespan=lifespan,
    )

    from assay.server.api import router as api_router
    from assay.server.calibration_api import router as calibration_router
    from assay.server.drift_api import router as drift_router
    from assay.server.evals_api import router as evals_router
    from assay.server.feedback_api import router as feedback_router
    from assay.server.monitors_api import router as monitors_router
    from assay.server.online_api import router as online_router
    from assay.server.otlp_routes import router as otlp_router
    from assay.server.queues_api import router as queues_router

    app.include_router(otlp_router)
    app.include_router(api_router)
    app.include_router(evals_router)
    app.include_router(drift_router)
    app.include_router(monitors_router)
    app.include_router(online_router)
    app.include_router(feedback_router)
    app.include_router(calibration_router)
    app.include_router(queues_router)
    from assay.server.pages import install as install_pages

    install_pages(app)

    @app.exception_handler(QueryError)
    async def _query_error(_: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(InvalidNameError)
    async def _name_error(_: Request, exc: InvalidNameError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(AuthError)
    async def _auth_error(_: Request, exc: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    @app.get("/healthz", summary="Liveness and ingest queue state")
    def healthz(request: Request) -> dict[str, Any]:
        stats = request.app.state.ingestor.stats
        return {
            "status": "ok",
            "version": __version__,
            "pending_spans": stats.pending_spans,
            "written_spans": stats.written_spans,
            "rejected_requests": stats.rejected_requests,
        }

    return app


__all__ = ["create_app"]
