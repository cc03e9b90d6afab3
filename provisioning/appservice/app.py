"""The bridge process: the appservice API Synapse calls, and the bot's start-up duties.

At start the bridge, in the background, makes the bot a server admin and pings itself
through Synapse (`/_matrix/client/v1/appservice/{id}/ping`): `/healthz` turns healthy
only when that round trip worked, so a deployment knows Synapse can reach the bridge.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Scope

from foundation.body_limits import MIB, Allowance, BodyLimits
from foundation.lifecycle import BackgroundTask, running
from foundation.settings import Settings
from foundation.web import (
    ApiError,
    bearer_token,
    error_response,
    install_error_handlers,
    install_request_log,
)
from matrix.appservice import select_state_events
from matrix.bot import ensure_bot_is_server_admin
from matrix.client import MatrixClient
from provisioning.appservice import commands, polls
from provisioning.appservice.inbox import Recorded, fingerprint_of, record_transaction
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.migrate import upgrade_to_head

log = logging.getLogger(__name__)


class Transaction(BaseModel):
    """`PUT /_matrix/app/v1/transactions/{txnId}`: events are checked one by one later."""

    model_config = ConfigDict(extra="allow")
    events: list[Any] = Field(default_factory=list)


class Ping(BaseModel):
    model_config = ConfigDict(extra="allow")
    transaction_id: str | None = None


READY_RETRY_MAX_SECONDS = 10.0


def _session_factory(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


SessionFactoryDep = Annotated[sessionmaker[Session], Depends(_session_factory)]


@dataclass
class BridgeState:
    """What the bridge learnt at start-up; read by `/healthz`."""

    ready: bool = False
    problem: str = "starting"
    ping_ms: int | None = None
    ping_txn_ids: set[str] = field(default_factory=set)
    transactions_processed: int = 0


def _is_homeserver(request: Request, token: str) -> bool:
    """The hs_token, compared in constant time."""
    settings: Settings = request.app.state.settings
    return hmac.compare_digest(token.encode(), settings.hs_token.get_secret_value().encode())


def _homeserver_only(request: Request) -> None:
    """Refuse any caller but our homeserver."""
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "M_UNAUTHORIZED", "Missing homeserver token")
    if not _is_homeserver(request, token):
        raise ApiError(403, "M_FORBIDDEN", "Wrong homeserver token")


async def _from_homeserver(scope: Scope) -> bool:
    """Whether a request carries the hs_token: only then may it send a big transaction."""
    request = Request(scope)
    token = bearer_token(request)
    return token is not None and _is_homeserver(request, token)


# Synapse batches up to 100 events (each up to 64 KiB) with receipts, typing and to-device
# messages into one transaction; 32 MiB leaves it room, and only Synapse may send that much.
TRANSACTION_MAX_BYTES = 32 * MIB


async def _become_ready(settings: Settings, client: MatrixClient, state: BridgeState) -> None:
    """Bootstrap the bot and ping through Synapse, retrying until both work."""
    delay = 0.5
    while not state.ready:
        try:
            await client.health()
            await ensure_bot_is_server_admin(
                client,
                bot_user_id=settings.bot_user_id,
                bot_localpart=settings.bot_localpart,
                shared_secret=settings.registration_shared_secret.get_secret_value(),
            )
            txn_id = f"parta-start-{secrets.token_hex(8)}"
            state.ping_txn_ids.add(txn_id)
            state.ping_ms = await client.appservice_ping(settings.appservice_id, txn_id)
        except Exception as exc:  # keep trying; /healthz shows the reason meanwhile
            state.problem = f"{type(exc).__name__}: {exc}"
            log.warning("bridge not ready yet: %s", state.problem)
            await asyncio.sleep(delay)
            delay = min(delay * 2, READY_RETRY_MAX_SECONDS)
        else:
            state.ready = True
            state.problem = ""
            log.info("bridge ready", extra={"appservice_ping_ms": state.ping_ms})


async def ask_provisioning_to_reconcile(settings: Settings) -> None:
    """A knock was answered in a Matrix client: ask provisioning to place the person now
    rather than at its next periodic run. Best effort: the periodic run catches up."""
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            response = await http.post(
                f"{settings.provisioning_url}/internal/reconcile",
                headers={"Authorization": f"Bearer {settings.as_token.get_secret_value()}"},
            )
            response.raise_for_status()
    except httpx.HTTPError:
        log.warning("could not ask provisioning to reconcile; its periodic run will", exc_info=True)


def create_app(settings: Settings) -> FastAPI:
    """Build the bridge's ASGI app; the database and Matrix client are opened in lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.sqlalchemy_url)
        await run_in_threadpool(upgrade_to_head, engine)
        app.state.sessions = make_session_factory(engine)
        client = MatrixClient(settings.homeserver_url, settings.as_token.get_secret_value())
        app.state.matrix = client
        runner = commands.CommandRunner(
            client,
            app.state.sessions,
            bot_user_id=settings.bot_user_id,
            call_widget_url=settings.call_widget_url,
        )
        app.state.commands = runner
        start_up = BackgroundTask(
            functools.partial(_become_ready, settings, client, app.state.bridge),
            name="bridge-start-up",
        )
        try:
            async with running(runner, start_up):
                yield
        finally:
            await client.close()
            engine.dispose()

    app = FastAPI(title="Parta bridge", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.bridge = BridgeState()
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(
        BodyLimits,
        allowances=[Allowance("PUT", r"/_matrix/app/v1/transactions/[^/]+", TRANSACTION_MAX_BYTES)],
        signed_in=_from_homeserver,
    )
    install_request_log(app)

    authorised = [Depends(_homeserver_only)]

    @app.put("/_matrix/app/v1/transactions/{txn_id}", dependencies=authorised)
    async def put_transaction(
        txn_id: str,
        request: Request,
        body: Transaction,
        factory: SessionFactoryDep,
    ) -> dict[str, Any]:
        events = body.events
        state_events = select_state_events(events)
        poll_events = polls.translate(events)
        # An end counts only from a room's moderators (or the poll's creator): their
        # power is read now, since storing runs in a thread without the network.
        ends_by_redactors = await polls.judge_ends(request.app.state.matrix, poll_events)

        def store() -> Recorded:
            with factory() as session:
                return record_transaction(
                    session, txn_id, state_events, bot_user_id=settings.bot_user_id,
                    fingerprint=fingerprint_of(events), poll_events=poll_events,
                    ends_by_redactors=ends_by_redactors,
                )  # fmt: skip

        recorded = await run_in_threadpool(store)
        if recorded.placements_changed:
            await ask_provisioning_to_reconcile(settings)
        if recorded.processed:
            # Only the first delivery of a transaction is answered: a retried one is not.
            request.app.state.commands.submit(
                commands.translate(events, bot_user_id=settings.bot_user_id)
            )
            request.app.state.bridge.transactions_processed += 1
            log.info(
                "transaction processed",
                extra={
                    "txn_id": txn_id,
                    "events": len(events),
                    "kept": len(state_events),
                    "poll_events": len(poll_events),
                },
            )
        else:
            log.info("transaction already processed", extra={"txn_id": txn_id})
        return {}

    @app.get("/_matrix/app/v1/users/{user_id}", dependencies=authorised)
    async def query_user(user_id: str) -> JSONResponse:
        # Parta creates its accounts ahead of time; it never makes one up on demand.
        if user_id == settings.bot_user_id:
            return JSONResponse({})
        return error_response(404, "M_NOT_FOUND", "No such user in Parta's namespace")

    @app.get("/_matrix/app/v1/rooms/{alias}", dependencies=authorised)
    async def query_alias(alias: str) -> JSONResponse:
        # Managed rooms are created by the reconciler, never on first lookup of their alias.
        return error_response(404, "M_NOT_FOUND", "No such room in Parta's namespace")

    @app.post("/_matrix/app/v1/ping", dependencies=authorised)
    async def ping(body: Ping) -> dict[str, Any]:
        log.info("ping from the homeserver", extra={"txn_id": body.transaction_id})
        return {}

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        state: BridgeState = request.app.state.bridge
        if state.ready:
            return JSONResponse(
                {
                    "status": "ok",
                    "appservice_ping_ms": state.ping_ms,
                    "transactions_processed": state.transactions_processed,
                    "commands_handled": request.app.state.commands.handled,
                }
            )
        return JSONResponse({"status": "starting", "problem": state.problem}, status_code=503)

    return app
