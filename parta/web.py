"""What every Parta HTTP service shares: the `{errcode, error}` error shape and request logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("parta.http")

_ERRCODE_BY_STATUS = {
    400: "M_BAD_JSON",
    401: "M_UNAUTHORIZED",
    403: "M_FORBIDDEN",
    404: "M_NOT_FOUND",
    405: "M_UNRECOGNIZED",
    429: "M_LIMIT_EXCEEDED",
}


class ApiError(Exception):
    """An error for the caller: an HTTP status, a Matrix-style errcode and a plain message."""

    def __init__(self, status: int, errcode: str, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.errcode = errcode
        self.error = error


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
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
    )
    return error_response(400, "M_BAD_JSON", f"The request is not valid: {problems}")


def install_request_log(app: FastAPI) -> None:
    """Log one line per request: method, path (no query: it may hold tokens), status, time."""

    @app.middleware("http")
    async def _log_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        log.info(
            "%s %s %s",
            request.method,
            request.url.path,
            response.status_code,
            extra={"duration_ms": round((time.perf_counter() - started) * 1000, 1)},
        )
        return response
