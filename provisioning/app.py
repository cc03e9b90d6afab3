"""The provisioning service's ASGI app: built by `create_app(settings)`, nothing at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.types import Scope

from foundation.body_limits import FORM_OVERHEAD_BYTES, MIB, Allowance, BodyLimits
from foundation.lifecycle import running
from foundation.settings import Settings
from foundation.web import ApiError, bearer_token, install_error_handlers, install_request_log
from matrix.client import MatrixClient, RetryPolicy
from provisioning.api import broadcasts, health, internal, meetings, school_year, v1
from provisioning.api.auth import TokenCache, verified_user
from provisioning.appointments.clock import AppointmentClock
from provisioning.broadcasts.clock import BroadcastClock
from provisioning.broadcasts.cover import MAX_COVER_BYTES
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.migrate import upgrade_to_head
from provisioning.meetings.clock import MeetingClock
from provisioning.policy.snapshot import refresh_snapshot
from provisioning.reconciler.run import RunReport, reconcile_region
from provisioning.reconciler.scheduler import ReconcileScheduler
from provisioning.services.region import ensure_region
from provisioning.sms import gateway_for
from provisioning.web import body_refusal, install_web
from provisioning.web.security import SESSION_COOKIE, find_session

ROSTER_MAX_BYTES = 5 * MIB  # a region's largest school's roster is well under 1 MB
LIBRARY_IMPORT_MAX_BYTES = 5 * MIB


def body_allowances(settings: Settings) -> list[Allowance]:
    """The routes that take files; every other body is refused over 64 KiB."""
    school = r"/schools/[0-9]+"
    upload = settings.max_upload_size_mb * MIB
    return [
        Allowance("POST", rf"/api/v1{school}/import", ROSTER_MAX_BYTES),
        Allowance("POST", rf"{school}/import", ROSTER_MAX_BYTES, FORM_OVERHEAD_BYTES),
        Allowance("POST", r"/library(/[0-9]+)?", upload, FORM_OVERHEAD_BYTES),
        Allowance("POST", r"/library/import", LIBRARY_IMPORT_MAX_BYTES, FORM_OVERHEAD_BYTES),
        # A broadcast's form with its cover, through the API and the admin UI.
        Allowance("POST", rf"/api/v1{school}/broadcasts", MAX_COVER_BYTES, FORM_OVERHEAD_BYTES),
        Allowance(
            "PATCH", rf"/api/v1{school}/broadcasts/[0-9]+", MAX_COVER_BYTES, FORM_OVERHEAD_BYTES
        ),
        Allowance("POST", rf"{school}/broadcasts(/[0-9]+)?", MAX_COVER_BYTES, FORM_OVERHEAD_BYTES),
    ]


async def signed_in(scope: Scope) -> bool:
    """Whether the caller is signed in (an API token or a page's session), from headers only."""
    request = Request(scope)
    token = bearer_token(request)
    if token is not None:
        try:
            await verified_user(request, token)
        except ApiError:
            return False
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return False

    def known() -> bool:
        with request.app.state.sessions() as session:
            return find_session(session, cookie) is not None

    return await run_in_threadpool(known)


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
        # Broadcasts' notices: bounded waits (a few tries within 30 s), then the next tick.
        broadcast_client = MatrixClient(
            settings.homeserver_url,
            settings.as_token.get_secret_value(),
            timeout=15.0,
            retry=RetryPolicy(attempts=3, deadline=30.0),
        )
        app.state.meetings = MeetingClock(broadcast_client, sessions, settings)
        app.state.appointments = AppointmentClock(broadcast_client, sessions, settings)
        app.state.broadcasts = BroadcastClock(
            broadcast_client,
            sessions,
            settings,
            parts=(app.state.meetings, app.state.appointments),
        )
        try:
            async with running(app.state.reconciler, app.state.broadcasts):
                yield
        finally:
            await broadcast_client.close()
            await reconciler_client.close()
            await app.state.matrix.close()
            engine.dispose()

    app = FastAPI(title="Parta provisioning", lifespan=lifespan)
    app.state.settings = settings
    app.state.token_cache = TokenCache()
    app.state.sms = gateway_for(settings)  # sign-in codes (provisioning/sms)
    install_error_handlers(app)
    # Inside the request log (a refusal is logged) and inside the pages' context (its
    # language), outside everything that reads a body.
    app.add_middleware(
        BodyLimits,
        allowances=body_allowances(settings),
        signed_in=signed_in,
        respond=body_refusal,
    )
    install_request_log(app)
    app.include_router(health.router)
    app.include_router(v1.router)
    app.include_router(broadcasts.router)
    app.include_router(meetings.router)
    app.include_router(school_year.router)
    app.include_router(internal.router)
    install_web(app, settings)
    return app
