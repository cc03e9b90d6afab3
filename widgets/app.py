"""The widget service: the call widget's SFU signalling (and, later, the documents widget).

`create_app(settings)` builds everything in its lifespan, nothing at import: the bridge's
Matrix client (the SFU reads rooms as the provisioning bot), the OpenID verifier that
knows our own homeserver by its local address, and the call service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, WebSocket
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from bridge.matrix.client import MatrixClient
from parta.settings import Settings
from parta.web import install_error_handlers, install_request_log
from widgets.call.rtp_forwarding import check_aiortc_version
from widgets.call.service import CallService
from widgets.openid import OpenIDVerifier, ServerResolver

CALL_STATIC = Path(__file__).resolve().parent / "call" / "static"


def _call_page_policy(settings: Settings) -> str:
    """The call page's Content-Security-Policy: own scripts only, media from WebRTC.

    It may be framed by any Matrix client (that is what a widget is); the standalone page
    signs in at the region's homeserver, so that is the one other address it may call.
    """
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "media-src 'self' blob: mediastream:",
            f"connect-src 'self' ws: wss: {settings.element_homeserver_url}",
            "frame-ancestors *",
            "base-uri 'none'",
            "form-action 'self'",
        )
    )


def create_app(settings: Settings) -> FastAPI:
    check_aiortc_version()  # refuse to start on an aiortc the forwarding was not written for

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolver = ServerResolver(local={settings.server_name: settings.homeserver_url})
        async with MatrixClient(
            settings.homeserver_url, settings.as_token.get_secret_value()
        ) as matrix:
            calls = CallService(OpenIDVerifier(resolver), matrix, last_n=settings.call_last_n)
            app.state.calls = calls
            try:
                yield
            finally:
                await calls.close()

    app = FastAPI(title="Parta widgets", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    install_request_log(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        calls: CallService = app.state.calls
        return {"status": "ok", "calls": len(calls.rooms)}

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
        """What the page needs: where to sign in standalone, and the ICE servers."""
        return {
            "homeserver_url": settings.element_homeserver_url,
            "server_name": settings.server_name,
            "ice_servers": [],
        }

    app.mount("/call/static", StaticFiles(directory=CALL_STATIC), name="call-static")

    @app.websocket("/call/ws")
    async def call_socket(socket: WebSocket) -> None:
        calls: CallService = app.state.calls
        await calls.session(socket)

    return app
