"""The provisioning service's ASGI app: built by `create_app(settings)`, nothing at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from bridge.matrix.client import MatrixClient, RetryPolicy
from parta.settings import Settings
from parta.web import install_error_handlers, install_request_log
from provisioning.api import health, internal, school_year, v1
from provisioning.api.auth import TokenCache
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.migrate import upgrade_to_head
from provisioning.policy.snapshot import refresh_snapshot
from provisioning.reconciler.run import RunReport, reconcile_region
from provisioning.reconciler.scheduler import ReconcileScheduler
from provisioning.services.region import ensure_region
from provisioning.web import install_web


def create_app(settings: Settings) -> FastAPI:
    """Build the app; the lifespan migrates the database and opens the Matrix client."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.sqlalchemy_url)
        await run_in_threadpool(upgrade_to_head, engine)
        sessions = make_session_factory(engine)
        with sessions() as session:
            await run_in_threadpool(ensure_region, session, settings)
            # Synapse's school policy module refuses pupils until it has a snapshot.
            await run_in_threadpool(
                refresh_snapshot, session, settings.policy_snapshot_path, settings.bot_user_id
            )
        app.state.sessions = sessions
        app.state.engine = engine
        # Health checks must answer quickly: one short try, no long retry budget.
        app.state.matrix = MatrixClient(
            settings.homeserver_url,
            settings.as_token.get_secret_value(),
            timeout=5.0,
            retry=RetryPolicy(attempts=1, deadline=5.0),
        )
        # The reconciler gets its own client with the normal retry budget.
        reconciler_client = MatrixClient(
            settings.homeserver_url, settings.as_token.get_secret_value()
        )

        async def run(full: bool) -> RunReport:
            with sessions() as session:
                return await reconcile_region(
                    session, reconciler_client, settings, full=full, wait_s=30.0
                )

        app.state.reconciler = ReconcileScheduler(
            run, debounce=settings.reconcile_debounce_s, period=settings.reconcile_interval_s
        )
        app.state.reconciler.start()
        try:
            yield
        finally:
            await app.state.reconciler.stop()
            await reconciler_client.close()
            await app.state.matrix.close()
            engine.dispose()

    app = FastAPI(title="Parta provisioning", lifespan=lifespan)
    app.state.settings = settings
    app.state.token_cache = TokenCache()
    install_error_handlers(app)
    install_request_log(app)
    app.include_router(health.router)
    app.include_router(v1.router)
    app.include_router(school_year.router)
    app.include_router(internal.router)
    install_web(app, settings)
    return app
