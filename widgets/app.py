"""The widget service: the call widget's SFU signalling (and, later, the documents widget).

`create_app(settings)` builds everything in its lifespan, nothing at import: the bridge's
Matrix client (the SFU reads rooms as the provisioning bot), the OpenID verifier that
knows our own homeserver by its local address, and the call service. With several widget
processes (`process` of `processes`) each runs the calls nginx sends it, one process per
call (`widgets.call.ownership`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from foundation.body_limits import FORM_OVERHEAD_BYTES, Allowance, BodyLimits, SignedIn
from foundation.lifecycle import running
from foundation.settings import Settings
from foundation.web import bearer_token, install_error_handlers, install_request_log
from matrix.client import MatrixClient
from matrix.openid import OpenIDVerifier, ServerResolver
from widgets.call.broadcast_recording import BroadcastRecordings
from widgets.call.edge import EdgeDirectory
from widgets.call.edge_service import EdgeService
from widgets.call.ownership import CallLocks
from widgets.call.persistence import CallStore
from widgets.call.rtp_forwarding import check_aiortc_version
from widgets.call.service import EMPTY_CALL_KEPT_S, CallService
from widgets.call.starting_mode import ProvisioningCallModes
from widgets.call.tickets import TicketSigner, key_from
from widgets.call.turn import TurnIssuer
from widgets.documents.disk import DiskAlarm
from widgets.documents.routes import documents_router
from widgets.documents.service import DocumentsService
from widgets.documents.sessions import NotSignedIn

CALL_STATIC = Path(__file__).resolve().parent / "call" / "static"
DOCUMENTS_STATIC = Path(__file__).resolve().parent / "documents" / "static"
SHARED_STATIC = Path(__file__).resolve().parent / "static"  # what every widget page uses


def _call_page_policy(settings: Settings) -> str:
    """The call page's Content-Security-Policy: own scripts only, media from WebRTC.

    It may be framed by any Matrix client (that is what a widget is); the standalone page
    signs in at the region's homeserver, so that is the one other address it may call.
    """
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",  # pdf.js, for a presented document
            "style-src 'self'",
            "img-src 'self' data:",
            "media-src 'self' blob: mediastream:",
            f"connect-src 'self' ws: wss: {settings.element_homeserver_url}",
            "frame-ancestors *",
            "base-uri 'none'",
            "form-action 'self'",
        )
    )


def _documents_page_policy(settings: Settings) -> str:
    """The documents page: own scripts (pdf.js and its worker), files from this service."""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",  # pdf.js decodes some images in wasm
            "worker-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            f"connect-src 'self' {settings.element_homeserver_url}",
            "frame-ancestors *",
            "base-uri 'none'",
            "form-action 'self'",
        )
    )


def _resolver(settings: Settings) -> ServerResolver:
    """Who an OpenID check may ask: our homeserver (by its local address) and the allow-list."""
    return ServerResolver(
        local={settings.server_name: settings.homeserver_url},
        federated=frozenset(settings.federation_allow_list),
        private_ok=frozenset(settings.federation_private_servers),
    )


def _signed_in_to(documents: DocumentsService) -> SignedIn:
    """Whether a request carries a live documents session (the upload's own sign-in)."""

    async def signed_in(scope: Scope) -> bool:
        try:
            documents.user_signed_in(bearer_token(Request(scope)))
        except NotSignedIn:
            return False
        return True

    return signed_in


@dataclass(frozen=True)
class EdgePlan:
    """This process's part in broadcasts' trees: the edges it sends its audiences to, and
    its own address as an edge (None: it is none)."""

    others: tuple[str, ...]
    own: str | None

    @classmethod
    def of(cls, settings: Settings, process: int, processes: int) -> EdgePlan:
        urls = list(settings.call_edges)
        if not urls and processes > 1:
            urls = [f"/call/edge/{number}/ws" for number in range(1, processes + 1)]
        index = settings.call_edge_first + process - 2
        own = urls[index] if 0 <= index < len(urls) else None
        return cls(tuple(url for url in urls if url != own), own)


def create_app(settings: Settings, *, process: int = 1, processes: int = 1) -> FastAPI:
    check_aiortc_version()  # refuse to start on an aiortc the forwarding was not written for
    turn = TurnIssuer.from_settings(settings)  # None without TURN (loopback needs none)
    documents = DocumentsService.from_settings(settings, OpenIDVerifier(_resolver(settings)))
    plan = EdgePlan.of(settings, process, processes)
    signer = TicketSigner(key_from(settings.as_token.get_secret_value()))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolver = _resolver(settings)
        async with MatrixClient(
            settings.homeserver_url, settings.as_token.get_secret_value()
        ) as matrix:
            recordings = BroadcastRecordings.from_settings(matrix, settings, process=process)
            calls = CallService(
                OpenIDVerifier(resolver),
                matrix,
                settings.bot_user_id,
                last_n=settings.call_last_n,
                turn=turn,
                store=CallStore(settings.call_state_dir, max_age_s=EMPTY_CALL_KEPT_S),
                access_poll_s=settings.call_access_poll_s,
                zone=ZoneInfo(settings.timezone),
                language=settings.language,
                locks=CallLocks(settings.call_state_dir) if processes > 1 else None,
                modes=ProvisioningCallModes.from_settings(settings),
                recordings=recordings,
                edges=EdgeDirectory(plan.others, settings.call_edge_viewers)
                if plan.others
                else None,
                signer=signer,
            )
            app.state.calls = calls
            edge = None
            if plan.own is not None:
                origin = settings.call_origin_url or (
                    f"ws://{settings.bind_address}:{settings.synapse_port}"
                )
                edge = EdgeService(
                    signer,
                    plan.own,
                    origin,
                    matrix,
                    settings.bot_user_id,
                    capacity=settings.call_edge_viewers,
                    turn=turn,
                    access_poll_s=settings.call_access_poll_s,
                )
            app.state.edge = edge
            # Recordings stop after the calls: their last stages are posted on the way out.
            async with running(documents, recordings, calls, *([edge] if edge else [])):
                yield

    app = FastAPI(title="Parta widgets", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.add_middleware(
        BodyLimits,
        allowances=[
            Allowance(
                "POST",
                r"/documents/api/rooms/[^/]+/files",
                documents.max_upload_bytes,
                FORM_OVERHEAD_BYTES,  # the service itself refuses a file over the limit
            )
        ],
        signed_in=_signed_in_to(documents),
    )
    install_request_log(app)

    disk = DiskAlarm(settings.media_store_dir, settings.documents_disk_alarm_percent)

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        calls: CallService = app.state.calls
        return {
            "status": "ok",
            "process": process,
            "calls": len(calls.rooms),
            "edge_viewers": app.state.edge.viewers if app.state.edge else 0,
            "media_disk": disk.status(),
        }

    page_headers = {
        "Content-Security-Policy": _call_page_policy(settings),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        # Camera, microphone and screen for this page, also inside a client's iframe.
        "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self)",
    }

    @app.get("/call/", include_in_schema=False)
    async def call_page() -> FileResponse:
        return FileResponse(CALL_STATIC / "call.html", headers=page_headers)

    @app.get("/call/config.json", include_in_schema=False)
    async def call_config() -> dict[str, object]:
        """What the page needs: where to sign in standalone, the ICE servers, and the admin
        UI, where a page opened without a room sends people for their lessons' links."""
        return {
            "homeserver_url": settings.element_homeserver_url,
            "web_url": settings.web_url,
            "server_name": settings.server_name,
            "ice_servers": [],
        }

    app.mount("/call/static", StaticFiles(directory=CALL_STATIC), name="call-static")
    app.mount("/static", StaticFiles(directory=SHARED_STATIC), name="shared-static")
    app.include_router(documents_router(documents))
    documents_headers = {
        "Content-Security-Policy": _documents_page_policy(settings),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }

    @app.get("/documents/", include_in_schema=False)
    async def documents_page() -> FileResponse:
        return FileResponse(DOCUMENTS_STATIC / "documents.html", headers=documents_headers)

    @app.get("/documents/config.json", include_in_schema=False)
    async def documents_config() -> dict[str, object]:
        """Where the standalone page signs in."""
        return {"homeserver_url": settings.element_homeserver_url}

    app.mount("/documents/static", StaticFiles(directory=DOCUMENTS_STATIC), name="documents-static")

    @app.websocket("/call/ws")
    async def call_socket(socket: WebSocket) -> None:
        calls: CallService = app.state.calls
        await calls.session(socket)

    @app.websocket("/call/edge/link")
    async def edge_link(socket: WebSocket) -> None:
        """An edge's link to a broadcast's call here (nginx serves it on loopback only)."""
        calls: CallService = app.state.calls
        await calls.edge_link(socket)

    @app.websocket("/call/edge/{number}/ws")
    async def edge_socket(socket: WebSocket, number: int) -> None:
        """A viewer's page, sent here by a broadcast's origin with a ticket."""
        edge: EdgeService | None = app.state.edge
        if edge is None or not edge.edge_id.endswith(f"/call/edge/{number}/ws"):
            await socket.close(code=1008, reason="not_an_edge")
            return
        await edge.session(socket)

    return app
