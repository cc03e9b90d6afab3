"""What every Parta HTTP service shares: the `{errcode, error}` error shape and request logs."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foundation.metrics import install_metrics, observe

log = logging.getLogger("parta.http")

_ERRCODE_BY_STATUS = {
    400: "M_BAD_JSON",
    401: "M_UNAUTHORIZED",
    403: "M_FORBIDDEN",
    404: "M_NOT_FOUND",
    405: "M_UNRECOGNIZED",
    413: "M_TOO_LARGE",
    429: "M_LIMIT_EXCEEDED",
}


class ApiError(Exception):
    """An error for the caller: an HTTP status, a Matrix-style errcode and a plain message."""

    def __init__(self, status: int, errcode: str, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.errcode = errcode
        self.error = error


# The largest id a row can have: SQLite's INTEGER and PostgreSQL's BIGINT are 64-bit signed.
MAX_ID = 2**63 - 1


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer …` header; None without one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def error_response(status: int, errcode: str, error: str) -> JSONResponse:
    return JSONResponse({"errcode": errcode, "error": error}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as `{errcode, error}`, the shape Matrix clients and Synapse expect."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.errcode, exc.error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error_response(exc)


def http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    errcode = _ERRCODE_BY_STATUS.get(exc.status_code, "M_UNKNOWN")
    return error_response(exc.status_code, errcode, str(exc.detail))


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    """400 naming each wrong field; 404 when a path's id cannot name anything."""
    wrong_ids = path_errors(exc)
    if wrong_ids:
        return error_response(
            404,
            "M_NOT_FOUND",
            f"There is nothing with {wrong_ids}: an id is a whole number from 1 to {MAX_ID}.",
        )
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
    )
    return error_response(400, "M_BAD_JSON", f"The request is not valid: {problems}")


def path_errors(exc: RequestValidationError) -> str:
    """The path parameters that are not valid ids, as `name 123`; empty if there are none.

    A number out of the database's range names no row, so it is "not found" rather than a
    malformed request (issue 18: 2⁶³ gave a 500 on every route with an id).
    """
    return ", ".join(
        f"{e['loc'][1]} {str(e.get('input'))[:40]}"
        for e in exc.errors()
        if e["loc"][:1] == ("path",) and len(e["loc"]) > 1
    )


def install_request_log(app: FastAPI) -> None:
    """Log one line per request: method, path (no query: it may hold tokens), status, time;
    count it in the service's Prometheus metrics, served at `/metrics` (foundation/metrics.py)."""
    app.add_middleware(RequestLog)
    install_metrics(app)


class RequestLog:
    """The request log as plain ASGI middleware, timed until the response's last byte.

    Not Starlette's `BaseHTTPMiddleware` (`@app.middleware("http")`): that one runs every
    read of a request body through a task group of its own, and a 100 MB upload arrives
    in some 1,600 reads; those task groups cost the documents service about half again
    the time of Synapse's own upload.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it answers

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            observe(scope, status, time.perf_counter() - started)
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={"duration_ms": round((time.perf_counter() - started) * 1000, 1)},
            )
